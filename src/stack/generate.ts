/**
 * Text → images with the default stack: a distilled student in 1–4 steps, or the teacher itself
 * with CFG. The library's `sampleImages` (src/run/sample.ts) opens a run and calls these.
 */
import { type StackDistillConfig, executorOf } from "../config/schema.ts";
import { ROUTE_STEPS } from "../config/defaults.ts";
import { key, foldIn, normal } from "../numerics/random.ts";
import type { DitParams } from "../models/dit.ts";
import { StackPipeline } from "./pipeline.ts";
import type { SampleImagesOptions, SampledImages } from "../eval/images.ts";
import { ditStudent } from "./student.ts";
import { studentSampleLatents } from "../eval/studentSamples.ts";
import { TEACHER_GUIDANCE, TEACHER_GUIDANCE_SCHEDULE } from "./teacherReport.ts";

export const DEFAULT_TEACHER = "models/fmnist/teacher.safetensors";
export const DEFAULT_VAE = "models/fmnist/vae.safetensors";


/**
 * One 28×28 image per prompt, pixels [n·784] in [0, 1]; deterministic in `seed`. With `student`
 * (a run's config and its parameters, not consumed) the student samples, else the teacher.
 */
export async function sampleStackImages(o: SampleImagesOptions, student?: { config: StackDistillConfig; params: DitParams }): Promise<SampledImages> {
  if (o.prompts.length === 0) throw new Error("give at least one prompt");
  const config = student?.config;
  const executor = executorOf({ executor: o.executor ?? "onnx", device: o.device ?? "cpu" });
  const pipe = StackPipeline.load({ teacher: o.teacher ?? config?.teacher.model ?? DEFAULT_TEACHER, vae: o.vae ?? config?.teacher.vae ?? DEFAULT_VAE }, executor);
  try {
    pipe.checkPrompts(o.prompts);
    const unknown = pipe.unknownWords(o.prompts);
    const warnings = unknown.length ? [`unknown word(s) read as <unk>: ${unknown.join(", ")}`] : [];
    const n = o.prompts.length, d = pipe.latentDim;
    const guidance = o.guidance ?? config?.eval.guidance ?? TEACHER_GUIDANCE;
    const k = key(o.seed ?? 0);
    let latents: Float32Array;
    if (student) {
      const cond = await pipe.conditions(o.prompts);
      latents = await studentSampleLatents(executor, ditStudent(pipe.teacher.dit), student.params, o.steps ?? 1, normal(foldIn(k, 0), n * d), cond,
        { data: new Float32Array(n).fill(guidance), shape: [n, 1] }, foldIn(k, 1), { ...student.config.eval, ...(o.eta === undefined ? {} : { eta: o.eta }) });
    } else {
      latents = await pipe.sampleTeacher(o.prompts, {
        steps: o.steps ?? ROUTE_STEPS, guidance, k: foldIn(k, 0), sampler: o.sampler, schedule: o.guidanceSchedule ?? TEACHER_GUIDANCE_SCHEDULE,
      });
    }
    return { pixels: await pipe.decode(latents), height: 28, width: 28, channels: 1, warnings };
  } finally {
    await pipe.dispose();
  }
}
