/**
 * The library API. `distill` runs a distillation into a directory; `sample` draws from a
 * distilled student. The method's pieces are exported for use on other teachers.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree } from "@jax-js/jax";
import { parseConfig, loadConfig, type TbcmConfig } from "./config/schema.ts";
import { initMlp, studentForward, type MlpParams } from "./models/mlp.ts";
import { loadParams } from "./train/checkpoint.ts";
import { studentConfig } from "./train/gmmProblem.ts";
import { conditionRows, column, gmmPromptNames } from "./train/problem.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "./method/sampler.ts";
import { SIGMA_D } from "./config/defaults.ts";
import { key, foldIn, normal } from "./numerics/random.ts";
import { takeHost } from "./numerics/tree.ts";

export { distill } from "./train/distill.ts";
export { sampleImages, type SampleImagesOptions } from "./stack/generate.ts";
export { pretrainTeacherCopy } from "./train/pretrain.ts";
export { parseConfig, loadConfig, type TbcmConfig };
export { routeAngles, jitterRoute } from "./method/route.ts";
export { sampleTrajectory, trainingPairs, blackFilter } from "./method/trajectory.ts";
export { consistencyTangent, normalizeTangent, scmLoss, tangentRatio, adaptiveWeight, jvpTangents } from "./method/loss.ts";
export { flowToTrigVelocity } from "./method/flowToTrig.ts";
export { cfgVelocity, teacherCfgVelocity } from "./method/guidance.ts";
export { sampleStudent, studentTimesteps, scmStep } from "./method/sampler.ts";

export type Student = { params: MlpParams; config: TbcmConfig };

/** Loads the student of a finished run directory. */
export function loadStudent(runDir: string): Student {
  let config: TbcmConfig;
  try {
    config = JSON.parse(readFileSync(join(runDir, "config.json"), "utf8")) as TbcmConfig; // the resolved config distill wrote
  } catch {
    throw new Error(`no readable config.json in "${runDir}": is it a run directory of tbcm distill?`);
  }
  if (config.teacher.kind === "stack") throw new Error(`"${runDir}" holds a student of the text-to-image stack: draw images with sampleImages({ run, prompts })`);
  const like = initMlp(key(0), studentConfig(config));
  const { params } = loadParams(join(runDir, "student.safetensors"), like);
  tree.dispose(like);
  return { params, config };
}

export type SampleOptions = {
  student: Student;
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
    if (i < 0) throw new Error(`prompt "${p}" is unknown to this student (it knows "${names[0]}" … "${names[names.length - 1]}")`);
    return i;
  });
  const timesteps = typeof steps === "number" ? studentTimesteps(steps) : steps;
  const n = prompts.length, d = cfg.teacher.dim;
  const w = guidance ?? cfg.guidance[Math.floor(cfg.guidance.length / 2)];
  const noises = timesteps.slice(1).map((_, i) => np.array(normal(foldIn(key(seed), i), n * d)).reshape([n, d]));
  const wCol = column(new Float32Array(n).fill(w));
  const x0 = sampleStudent(studentAsVelocity(studentForward, student.params, wCol), noises, timesteps, conditionRows(indices, cfg.teacher.prompts), eta ?? cfg.eval.eta);
  wCol.dispose();
  const z = takeHost(x0.div(SIGMA_D));
  return prompts.map((_, i) => z.slice(i * d, (i + 1) * d));
}
