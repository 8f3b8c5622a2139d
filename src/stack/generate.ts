/**
 * Text → images with the default stack: a distilled student (a run directory of
 * `tbcm distill` on the stack teacher) in 1–4 steps, or the teacher itself with CFG.
 * What `tbcm sample` and the library's `sampleImages` run.
 */
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import type { TbcmConfig, ExecutorKind } from "../config/schema.ts";
import { key, foldIn, normal } from "../numerics/random.ts";
import { loadParams } from "../train/checkpoint.ts";
import { initDit, withStudentHeads } from "../models/dit.ts";
import { StackPipeline, type TeacherSampler } from "./pipeline.ts";
import { ditStudent, studentSampleLatents } from "./problem.ts";
import { TEACHER_GUIDANCE_SCHEDULE } from "./teacherReport.ts";
import type { GuidanceSchedule } from "../method/guidance.ts";

export const DEFAULT_TEACHER = "models/fmnist/teacher.safetensors";
export const DEFAULT_VAE = "models/fmnist/vae.safetensors";

export type SampleImagesOptions = {
  /** A run directory of `tbcm distill` on the stack teacher; without it the teacher samples. */
  run?: string;
  /** Teacher and VAE files (defaults: the run's, else the shipped ones). */
  teacher?: string;
  vae?: string;
  prompts: readonly string[];
  /** Student: 1, 2 or 4 (any n ≥ 1); teacher: its sampler's steps (default 16). */
  steps?: number;
  guidance?: number;
  /** Student only: the fresh-noise share when re-noising (default: the run's `eval.eta`). */
  eta?: number;
  /** Teacher only: where its guidance acts (default: the shipped teacher's, TEACHER_GUIDANCE_SCHEDULE). */
  guidanceSchedule?: GuidanceSchedule;
  seed?: number;
  sampler?: TeacherSampler;
  executor?: ExecutorKind;
};

export type SampledImages = { pixels: Float32Array; height: number; width: number; warnings: string[] };

/** One 28×28 image per prompt, pixels [n·784] in [0, 1]; deterministic in `seed`. */
export async function sampleImages(o: SampleImagesOptions): Promise<SampledImages> {
  if (o.prompts.length === 0) throw new Error("give at least one prompt");
  let config: TbcmConfig | undefined;
  if (o.run) {
    const path = join(o.run, "config.json");
    if (!existsSync(join(o.run, "student.safetensors")) || !existsSync(path)) throw new Error(`"${o.run}" holds no finished student (student.safetensors, config.json): run tbcm distill first`);
    config = JSON.parse(readFileSync(path, "utf8")) as TbcmConfig;
    if (config.teacher.kind !== "stack") throw new Error(`"${o.run}" is a run on the ${config.teacher.kind} teacher; images need a run on the stack teacher`);
  }
  const executor = o.executor ?? "onnx";
  const pipe = StackPipeline.load({ teacher: o.teacher ?? config?.teacher.model ?? DEFAULT_TEACHER, vae: o.vae ?? config?.teacher.vae ?? DEFAULT_VAE }, executor);
  try {
    const unknown = pipe.unknownWords(o.prompts);
    const warnings = unknown.length ? [`unknown word(s) read as <unk>: ${unknown.join(", ")}`] : [];
    const n = o.prompts.length, d = pipe.latentDim;
    const guidance = o.guidance ?? config?.eval.guidance ?? 4.5;
    const k = key(o.seed ?? 0);
    let latents: Float32Array;
    if (config) {
      const dc = pipe.teacher.dit;
      const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
      const { params } = loadParams(join(o.run!, "student.safetensors"), like);
      tree.dispose(like);
      const cond = await pipe.conditions(o.prompts);
      latents = await studentSampleLatents(executor, ditStudent(dc), params, o.steps ?? 1, normal(foldIn(k, 0), n * d), cond,
        { data: new Float32Array(n).fill(guidance), shape: [n, 1] }, foldIn(k, 1), { ...config.eval, ...(o.eta === undefined ? {} : { eta: o.eta }) });
      tree.dispose(params);
    } else {
      latents = await pipe.sampleTeacher(o.prompts, {
        steps: o.steps ?? 16, guidance, k: foldIn(k, 0), sampler: o.sampler, schedule: o.guidanceSchedule ?? TEACHER_GUIDANCE_SCHEDULE,
      });
    }
    return { pixels: await pipe.decode(latents), height: 28, width: 28, warnings };
  } finally {
    await pipe.dispose();
  }
}
