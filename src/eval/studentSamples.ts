/** A student's samples over the executor: what curves, evaluations and `sample` draw, for any teacher kind. */
import { tree } from "@jax-js/jax";
import type { TbcmConfig, Executor } from "../config/schema.ts";
import { SIGMA_D } from "../config/defaults.ts";
import { type Key, foldIn, normal } from "../numerics/random.ts";
import type { Tree } from "../numerics/tree.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import { inference, inChunks } from "../executor/inference.ts";
import type { Student } from "../method/student.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";

/** How the student samples beyond its step count (the run's `eval` settings). */
export type StudentSampler = Pick<TbcmConfig["eval"], "twoStepMid" | "eta" | "multiStep">;

/**
 * Student samples (z units, flat rows [B·d]) with `steps` sampling steps: first noise `noise`,
 * later ones from `k`; `maxRows` rows per program call. `params` is not consumed.
 */
export async function studentSampleLatents<P extends Tree>(executor: Executor, student: Student<P>, params: P, steps: number, noise: Float32Array,
  cond: HostTensor, w: HostTensor, k: Key, sampler: StudentSampler, maxRows = 250): Promise<Float32Array> {
  const B = cond.shape[0], d = noise.length / B;
  const timesteps = studentTimesteps(steps, sampler.twoStepMid, undefined, sampler.multiStep);
  const program = inference(executor, params, (p, c, ww, ...ns) => {
    const x0 = sampleStudent(studentAsVelocity(student, p, ww), ns, timesteps, c, sampler.eta);
    tree.dispose(p); ww.dispose();
    return x0.div(SIGMA_D);
  }, `student_${steps}step`);
  const noises: HostTensor[] = [{ data: noise, shape: [B, d] }];
  for (let i = 1; i < steps; i++) noises.push({ data: normal(foldIn(k, i), B * d), shape: [B, d] });
  try {
    const [x] = await inChunks(program, [cond, w, ...noises], B, Math.min(B, maxRows));
    return x.data;
  } finally {
    await program.dispose();
  }
}

/**
 * The re-noising streams of a run's evaluation (from its sampling key): one for the metrics' samples
 * and one for the grids', each shared by every step count, so that the i-th re-noising draws the
 * same noise at 2 and at 4 steps and step counts differ, image for image, only by their sampler
 * (their first steps coincide). Each is the stream the 2-step samples have always used, so 2-step
 * metrics and grids stay what they were.
 */
export function renoiseStreams(sampling: Key): { metrics: Key; grids: Key } {
  return { metrics: foldIn(sampling, 2), grids: foldIn(sampling, 102) };
}

/**
 * The fixed inputs of the 1-step consistency curve: `curve_noises` rows cycling through the
 * prompts and the guidance scales, and their noise (key `k`); the same at every evaluation step.
 */
export function curveInputs(cfg: Pick<TbcmConfig, "guidance"> & { eval: Pick<TbcmConfig["eval"], "curveNoises"> }, promptCount: number, d: number, k: Key) {
  const prompts = globalThis.Array.from({ length: cfg.eval.curveNoises }, (_, i) => i % promptCount);
  const w: HostTensor = { data: Float32Array.from(prompts, (_, i) => cfg.guidance[i % cfg.guidance.length]), shape: [prompts.length, 1] };
  return { prompts, w, noise: normal(k, prompts.length * d) };
}
