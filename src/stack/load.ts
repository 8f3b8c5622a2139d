/**
 * Loading the default stack's shipped weights: VAE (with its latent scale and black latent) and
 * the teacher (text encoder + DiT, with the tokenizer's vocabulary). Every file carries its model
 * config in its metadata, so loading needs nothing but the file.
 */
import { existsSync } from "node:fs";
import { shippedPath } from "../paths.ts";
import { tree } from "@jax-js/jax";
import { key } from "../numerics/random.ts";
import { loadSafetensors } from "../numerics/safetensors.ts";
import { loadParams } from "../train/checkpoint.ts";
import { type VaeConfig, type VaeParams, initVae } from "../models/vae.ts";
import type { TextEncoderConfig, TextEncoderParams } from "../models/textEncoder.ts";
import type { DitConfig, DitParams } from "../models/dit.ts";
import { initTeacher } from "./init.ts";
import { type Tokenizer, buildTokenizerFromVocab } from "../data/tokenizer.ts";
import type { Tree } from "../numerics/tree.ts";

function metadataOf(path: string, kind: string, what: string): Record<string, string> {
  if (!existsSync(shippedPath(path))) throw new Error(`no ${what} at "${path}": train it (see configs/fmnist-stack.yaml) or fix the path`);
  const { metadata } = loadSafetensors(path);
  if (metadata.kind !== kind) throw new Error(`"${path}" is not a ${what} (kind "${metadata.kind}", expected "${kind}")`);
  return metadata;
}

function loadLike<P extends Tree>(path: string, like: P): P {
  const { params } = loadParams(path, like);
  tree.dispose(like);
  return params;
}

export type LoadedVae = { params: VaeParams; config: VaeConfig; scale: number; blackLatent: number[] };

let vaeLoads = 0;
/** How many times a VAE was loaded in this process (TBCM's training asserts it loads none). */
export const vaeLoadCount = () => vaeLoads;

export function loadVae(path: string): LoadedVae {
  vaeLoads++;
  const m = metadataOf(path, "tbcm-vae", "VAE");
  const config = JSON.parse(m.config) as VaeConfig;
  return { params: loadLike(path, initVae(key(0), config)), config, scale: Number(m.scale), blackLatent: JSON.parse(m.black_latent) };
}

export type TeacherParams = { text: TextEncoderParams; dit: DitParams };
export type LoadedTeacher = { params: TeacherParams; text: TextEncoderConfig; dit: DitConfig; tokenizer: Tokenizer; latentDim: number };

export function teacherLike(text: TextEncoderConfig, dit: DitConfig): TeacherParams {
  return initTeacher(key(0), text, dit);
}

export function loadTeacher(path: string): LoadedTeacher {
  const m = metadataOf(path, "tbcm-teacher", "teacher");
  const text = JSON.parse(m.text_config) as TextEncoderConfig;
  const dit = JSON.parse(m.dit_config) as DitConfig;
  const tokenizer = buildTokenizerFromVocab(JSON.parse(m.vocab));
  return { params: loadLike(path, teacherLike(text, dit)), text, dit, tokenizer, latentDim: dit.side * dit.side * dit.channels };
}
