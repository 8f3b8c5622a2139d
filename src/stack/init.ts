/** Fresh parameters of the default teacher (text encoder + DiT). */
import { type Key, foldIn } from "../numerics/random.ts";
import { type TextEncoderConfig, type TextEncoderParams, initTextEncoder } from "../models/textEncoder.ts";
import { type DitConfig, type DitParams, initDit } from "../models/dit.ts";

export type TeacherParams = { text: TextEncoderParams; dit: DitParams };

export function initTeacher(k: Key, text: TextEncoderConfig, dit: DitConfig): TeacherParams {
  return { text: initTextEncoder(foldIn(k, 1), text), dit: initDit(foldIn(k, 2), dit) };
}
