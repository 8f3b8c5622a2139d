/** Sampling from a student of the analytic teacher (the library's `sample`). */
import { numpy as np } from "@jax-js/jax";
import type { GmmConfig } from "../config/schema.ts";
import { SIGMA_D } from "../config/defaults.ts";
import { key, foldIn, normal } from "../numerics/random.ts";
import { takeHost } from "../numerics/tree.ts";
import type { MlpParams } from "../models/mlp.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";
import { column } from "../train/problem.ts";
import { conditionRows, gmmPromptNames } from "./teacher.ts";
import { mlpStudent } from "./student.ts";
import { quotePrompt } from "../data/prompts.ts";

/** A student of a finished run on the analytic teacher (`loadStudent`). */
export type GmmStudent = { params: MlpParams; config: GmmConfig };

export type SampleOptions = {
  student: GmmStudent;
  /** Prompt names, one sample each. */
  prompts: string[];
  /** Sampling steps (1, 2, …) or an explicit decreasing list of angles from π/2 to 0. */
  steps?: number | number[];
  seed?: number;
  /** Guidance scale fed to the student's guidance embedding. */
  guidance?: number;
  /** Fresh-noise share when re-noising between steps (default: the run's `eval.eta`; see `scmStep`). */
  eta?: number;
};

/** Draws one latent per prompt (z units, `[prompts.length][d]`), deterministic in `seed`. */
export function sample({ student, prompts, steps = 1, seed = 0, guidance, eta }: SampleOptions): Float32Array[] {
  const cfg = student.config;
  const names = gmmPromptNames(cfg.teacher.prompts);
  const indices = prompts.map((p) => {
    const i = names.indexOf(p);
    if (i < 0) throw new Error(`prompt ${quotePrompt(p)} is unknown to this student (it knows "${names[0]}" … "${names[names.length - 1]}")`);
    return i;
  });
  const timesteps = typeof steps === "number" ? studentTimesteps(steps) : steps;
  const n = prompts.length, d = cfg.teacher.dim;
  const w = guidance ?? cfg.guidance[Math.floor(cfg.guidance.length / 2)];
  const noises = timesteps.slice(1).map((_, i) => np.array(normal(foldIn(key(seed), i), n * d)).reshape([n, d]));
  const wCol = column(new Float32Array(n).fill(w));
  const x0 = sampleStudent(studentAsVelocity(mlpStudent, student.params, wCol), noises, timesteps, conditionRows(indices, cfg.teacher.prompts), eta ?? cfg.eval.eta);
  wCol.dispose();
  const z = takeHost(x0.div(SIGMA_D));
  return prompts.map((_, i) => z.slice(i * d, (i + 1) * d));
}
