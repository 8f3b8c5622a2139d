/**
 * The analytic teacher (issue #2): per prompt a Gaussian mixture in R^d whose flow-matching
 * velocity is closed-form; the prompts it knows, the prompts to train on, and its one-hot
 * condition rows.
 */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { GmmConfig } from "../config/schema.ts";
import { ConfigError } from "../config/schema.ts";
import { type GmmSpec, type GmmArrays, drawMeans, gmmArrays, gmmFlowVelocity } from "../models/gmm.ts";
import { flowToTrigVelocity } from "../method/flowToTrig.ts";
import type { TrigVelocity } from "../method/guidance.ts";
import { key } from "../numerics/random.ts";
import { readPromptFile, quotePrompt } from "../data/prompts.ts";

export type GmmTeacher = {
  spec: GmmSpec;
  /** Long-lived teacher arrays; `velocity` takes its own references. */
  arrays: GmmArrays;
  velocity: TrigVelocity;
  /** Indices (into spec.prompts) of the prompts to train on. */
  trainPrompts: number[];
};

/** Prompt names of the analytic teacher. */
export function gmmPromptNames(n: number): string[] {
  return globalThis.Array.from({ length: n }, (_, i) => `prompt ${i}`);
}

export function buildGmmTeacher(cfg: GmmConfig): GmmTeacher {
  const t = cfg.teacher;
  const prompts = gmmPromptNames(t.prompts);
  const means = t.means.length ? Float32Array.from(t.means.flat()) : drawMeans(key(t.meansSeed), t.prompts, t.components, t.dim);
  const spec: GmmSpec = { dim: t.dim, prompts, components: t.components, std: t.std, means };
  let trainPrompts = prompts.map((_, i) => i);
  if (cfg.promptsFile) {
    const wanted = readPromptFile(cfg.promptsFile);
    trainPrompts = wanted.map((p) => {
      const i = prompts.indexOf(p);
      if (i < 0) throw new ConfigError(`prompt ${quotePrompt(p)} in ${cfg.promptsFile} is unknown to the teacher (it knows "${prompts[0]}" … "${prompts[prompts.length - 1]}")`);
      return i;
    });
  }
  const arrays = gmmArrays(spec);
  const velocity: TrigVelocity = (u, tt, cond) =>
    flowToTrigVelocity((x, s) => gmmFlowVelocity(tree.ref(arrays), t.std, cond, x, s), u, tt);
  return { spec, arrays, velocity, trainPrompts };
}

/** One-hot condition rows [B, P] for prompt indices; index −1 is the empty prompt (a zero row). */
export function conditionRows(promptIndices: readonly number[], promptCount: number): Array {
  const rows = new Float32Array(promptIndices.length * promptCount);
  promptIndices.forEach((p, b) => { if (p >= 0) rows[b * promptCount + p] = 1; });
  return np.array(rows).reshape([promptIndices.length, promptCount]);
}
