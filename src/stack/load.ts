/**
 * Loading the default stack's shipped weights: VAE (with its latent scale and black latent) and
 * the teacher (text encoder + DiT, with the tokenizer's vocabulary). Every file carries its model
 * config in its metadata, so loading needs nothing but the file.
 */
import { existsSync } from "node:fs";
import { shippedPath } from "../paths.ts";
import { tree } from "@jax-js/jax";
import { key } from "../numerics/random.ts";
import { checkModelSizes } from "../config/limits.ts";
import { loadSafetensors } from "../numerics/safetensors.ts";
import { loadParams } from "../numerics/params.ts";
import { type VaeConfig, type VaeParams, initVae } from "../models/vae.ts";
import type { TextEncoderConfig } from "../models/textEncoder.ts";
import type { DitConfig } from "../models/dit.ts";
import { type TeacherParams, initTeacher } from "./init.ts";
import { type Tokenizer, buildTokenizerFromVocab } from "../data/tokenizer.ts";
import type { Tree } from "../numerics/tree.ts";

function metadataOf(path: string, kind: string, what: string): Record<string, string> {
  if (!existsSync(shippedPath(path))) throw new Error(`no ${what} at "${path}": train it (see configs/fmnist-stack.yaml) or fix the path`);
  const { metadata } = loadSafetensors(path);
  if (metadata.kind !== kind) throw new Error(`"${path}" is not a ${what} (kind "${metadata.kind}", expected "${kind}")`);
  return metadata;
}

/** A metadata entry that must be JSON (of an object, or of a list of finite numbers): a one-line error naming the file otherwise. */
function jsonOf(path: string, m: Record<string, string>, name: string, want: "object" | "numbers"): any {
  let v: unknown;
  try {
    v = JSON.parse(m[name] ?? "");
  } catch {
    v = undefined;
  }
  const ok = want === "object" ? typeof v === "object" && v !== null && !Array.isArray(v)
    : Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isFinite(x));
  if (!ok) throw new Error(`"${path}": metadata "${name}" is not ${want === "object" ? "a JSON object" : "a JSON list of finite numbers"} (a damaged file?)`);
  return v;
}

/** A model config from a file's metadata, its sizes bounded before anything is built from it. */
function modelConfigOf<C>(path: string, m: Record<string, string>, name: string): C {
  return checkModelSizes(path, name, jsonOf(path, m, name, "object")) as C;
}

/** Parameters shaped like `like` (consumed); NaN/Inf weights, wrong names or shapes are errors naming the file and tensor (loadParams). */
function loadLike<P extends Tree>(path: string, like: P): P {
  const { params } = loadParams(path, like);
  tree.dispose(like);
  return params;
}

export type LoadedVae = { params: VaeParams; config: VaeConfig; scale: number; blackLatent: number[] };

export function loadVae(path: string): LoadedVae {
  const m = metadataOf(path, "tbcm-vae", "VAE");
  const config = modelConfigOf<VaeConfig>(path, m, "config");
  const scale = Number(m.scale);
  if (!Number.isFinite(scale) || scale <= 0) throw new Error(`"${path}": metadata "scale" is ${JSON.stringify(m.scale ?? null)}, not a positive number (a damaged file?)`);
  const blackLatent = jsonOf(path, m, "black_latent", "numbers") as number[];
  return { params: loadLike(path, initVae(key(0), config)), config, scale, blackLatent };
}

export type LoadedTeacher = { params: TeacherParams; text: TextEncoderConfig; dit: DitConfig; tokenizer: Tokenizer; latentDim: number };

export function teacherLike(text: TextEncoderConfig, dit: DitConfig): TeacherParams {
  return initTeacher(key(0), text, dit);
}

export function loadTeacher(path: string): LoadedTeacher {
  const m = metadataOf(path, "tbcm-teacher", "teacher");
  const text = modelConfigOf<TextEncoderConfig>(path, m, "text_config");
  const dit = modelConfigOf<DitConfig>(path, m, "dit_config");
  let vocab: unknown;
  try {
    vocab = JSON.parse(m.vocab ?? "");
  } catch {
    vocab = undefined;
  }
  if (!Array.isArray(vocab) || !vocab.every((w) => typeof w === "string")) throw new Error(`"${path}": metadata "vocab" is not a JSON list of words (a damaged file?)`);
  const tokenizer = buildTokenizerFromVocab(vocab);
  return { params: loadLike(path, teacherLike(text, dit)), text, dit, tokenizer, latentDim: dit.side * dit.side * dit.channels };
}
