/** Fresh parameters of the default teacher (text encoder + DiT). */
import { type Key, foldIn } from "../numerics/random.ts";
import { type TextEncoderConfig, initTextEncoder } from "../models/textEncoder.ts";
import { type DitConfig, initDit } from "../models/dit.ts";
import type { TeacherParams } from "./load.ts";

export function initTeacher(k: Key, text: TextEncoderConfig, dit: DitConfig): TeacherParams {
  return { text: initTextEncoder(foldIn(k, 1), text), dit: initDit(foldIn(k, 2), dit) };
}
