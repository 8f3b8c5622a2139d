/**
 * A distillation problem assembled from the config: the teacher, the prompts it knows and the
 * prompts to train on, and the condition rows the student and teacher take.
 */
import { shippedPath } from "../paths.ts";
import { readFileSync } from "node:fs";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { TbcmConfig } from "../config/schema.ts";
import { ConfigError } from "../config/schema.ts";
import { type GmmSpec, type GmmArrays, drawMeans, gmmArrays, gmmFlowVelocity } from "../models/gmm.ts";
import { flowToTrigVelocity } from "../method/flowToTrig.ts";
import type { TrigVelocity } from "../method/guidance.ts";
import { type Key, key } from "../numerics/random.ts";
import type { Tree } from "../numerics/tree.ts";
import type { Student } from "./step.ts";

export type Problem = {
  spec: GmmSpec;
  /** Long-lived teacher arrays; `teacher` takes its own references. */
  arrays: GmmArrays;
  teacher: TrigVelocity;
  /** Indices (into spec.prompts) of the prompts to train on. */
  trainPrompts: number[];
};

/** Prompt names of the analytic teacher. */
export function gmmPromptNames(n: number): string[] {
  return globalThis.Array.from({ length: n }, (_, i) => `prompt ${i}`);
}

/** Reads a prompt file: one prompt per line, blank lines and `#` comments ignored. */
export function readPromptFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(shippedPath(path), "utf8");
  } catch {
    throw new ConfigError(`cannot read prompt file "${path}": check prompts_file in the config`);
  }
  const prompts = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (prompts.length === 0) throw new ConfigError(`prompt file "${path}" has no prompts: write one prompt per line`);
  return prompts;
}

export function buildProblem(cfg: TbcmConfig): Problem {
  const t = cfg.teacher;
  const prompts = gmmPromptNames(t.prompts);
  const means = t.means.length ? Float32Array.from(t.means.flat()) : drawMeans(key(t.meansSeed), t.prompts, t.components, t.dim);
  const spec: GmmSpec = { dim: t.dim, prompts, components: t.components, std: t.std, means };
  let trainPrompts = prompts.map((_, i) => i);
  if (cfg.promptsFile) {
    const wanted = readPromptFile(cfg.promptsFile);
    trainPrompts = wanted.map((p) => {
      const i = prompts.indexOf(p);
      if (i < 0) throw new ConfigError(`prompt "${p}" in ${cfg.promptsFile} is unknown to the teacher (it knows "${prompts[0]}" … "${prompts[prompts.length - 1]}")`);
      return i;
    });
  }
  const arrays = gmmArrays(spec);
  const teacher: TrigVelocity = (u, tt, cond) =>
    flowToTrigVelocity((x, s) => gmmFlowVelocity(tree.ref(arrays), t.std, cond, x, s), u, tt);
  return { spec, arrays, teacher, trainPrompts };
}

/** One-hot condition rows [B, P] for prompt indices; index −1 is the empty prompt (a zero row). */
export function conditionRows(promptIndices: readonly number[], promptCount: number): Array {
  const rows = new Float32Array(promptIndices.length * promptCount);
  promptIndices.forEach((p, b) => { if (p >= 0) rows[b * promptCount + p] = 1; });
  return np.array(rows).reshape([promptIndices.length, promptCount]);
}

/** A column [B, 1] from host values. */
export function column(values: ArrayLike<number>): Array {
  return np.array(Float32Array.from(values)).reshape([values.length, 1]);
}

/**
 * What the distillation loop needs from a teacher, whatever it is (the analytic GMM, or the
 * default text-to-image stack): its guided velocity, the prompts' conditions, the student it
 * starts from, real latents for the sCM baseline, and how to measure a student.
 */
export interface DistillProblem<P extends Tree = Tree> {
  /** Latent dimension d (flat latents [B, d]). */
  readonly dim: number;
  readonly teacher: TrigVelocity;
  /** Number of training prompts; prompts are indices 0..n−1, −1 the empty prompt. */
  readonly promptCount: number;
  /** Condition rows of prompt indices (−1: the empty prompt). */
  conditions(prompts: readonly number[]): Array;
  readonly student: Student<P>;
  /** The student to start from (a teacher copy, or fresh). */
  initialStudent(k: Key): P;
  readonly studentKind: string;
  /** Real data latents (z units) of the prompts, for the sCM baseline. */
  realLatents(k: Key, prompts: readonly number[]): Float32Array | Promise<Float32Array>;
  /** Scaled latent of an all-black image for the black filter (empty: no filter). */
  readonly blackLatent: Float32Array;
  /** Things the user should know about the input (e.g. unknown prompt words). */
  readonly warnings?: readonly string[];
  /** The 1-step consistency error of a student against the teacher's ODE endpoints (params not consumed). */
  curve(params: P): Promise<number>;
  /** Final metrics of a student (params not consumed). */
  evaluate(params: P, outDir: string, k: Key, say?: (line: string) => void): Promise<Record<string, number>>;
  dispose(): void;
}
