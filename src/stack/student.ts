/**
 * The stack's student (spec §4): a copy of the teacher's DiT with a zero-initialised guidance
 * embedder and a logvar head, in TrigFlow form; and its sampler over the executor.
 */
import { tree } from "@jax-js/jax";
import type { TbcmConfig } from "../config/schema.ts";
import { SIGMA_D } from "../config/defaults.ts";
import { type Key, foldIn, normal } from "../numerics/random.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import { inference, inChunks } from "../executor/inference.ts";
import { type DitParams, type DitConfig, ditFlow } from "../models/dit.ts";
import { type Student, trigflowStudent } from "../method/student.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";

/** The `kind` metadata of this student's files. */
export const STACK_STUDENT_KIND = "tbcm-student-dit";

/** The student in TrigFlow form: a DiT with guidance embedding and logvar head, through flow → TrigFlow (spec §2). */
export function ditStudent(c: DitConfig): Student<DitParams> {
  return trigflowStudent((p, x, s, cond, w) => ditFlow(p, c, x, s, cond, w));
}

/** How the student samples beyond its step count (the run's `eval` settings). */
export type StudentSampler = Pick<TbcmConfig["eval"], "twoStepMid" | "eta">;

/** Student samples (z units, [B·d]) with `steps` sampling steps: first noise `noise`, later ones from `k`. */
export async function studentSampleLatents(executor: TbcmConfig["executor"], student: Student<DitParams>, params: DitParams, steps: number, noise: Float32Array, cond: HostTensor, w: HostTensor, k: Key, sampler: StudentSampler): Promise<Float32Array> {
  const B = cond.shape[0], d = noise.length / B;
  const timesteps = studentTimesteps(steps, sampler.twoStepMid);
  const program = inference(executor, params, (p, c, ww, ...ns) => {
    const x0 = sampleStudent(studentAsVelocity(student, p, ww), ns, timesteps, c, sampler.eta);
    tree.dispose(p); ww.dispose();
    return x0.div(SIGMA_D);
  }, `student_${steps}step`);
  const noises: HostTensor[] = [{ data: noise, shape: [B, d] }];
  for (let i = 1; i < steps; i++) noises.push({ data: normal(foldIn(k, i), B * d), shape: [B, d] });
  const [x] = await inChunks(program, [cond, w, ...noises], B, Math.min(B, 250));
  await program.dispose();
  return x.data;
}

