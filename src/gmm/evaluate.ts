/**
 * Metrics of a student on the analytic teacher, on held-out noises and every prompt
 * (issue #2): the 1-step consistency error against the exact ODE endpoint from the same noise,
 * and sliced W2 of 1- and 2-step samples and of the teacher's own 16-step sampler against
 * exact ODE samples (common noises, per prompt, averaged).
 */
import { numpy as np, jit, tree, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import type { GmmConfig } from "../config/schema.ts";
import { type Key, foldIn, normal } from "../numerics/random.ts";
import { takeHost, type Tree } from "../numerics/tree.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";
import { sampleTrajectory } from "../method/trajectory.ts";
import { routeAngles } from "../method/route.ts";
import type { Student } from "../method/student.ts";
import { column } from "../train/problem.ts";
import { odeEndpoint, rk4Step } from "../eval/ode.ts";
import { slicedWasserstein2, relativeMse } from "../eval/distance.ts";
import { type GmmTeacher, conditionRows } from "./teacher.ts";

/** Held-out noises, their prompts and guidance scales, and the exact ODE endpoints (z units). */
export type EvalSet = {
  noise: Float32Array;
  prompts: number[];
  guidance: number[];
  reference: Float32Array;
};

const toZ = (x: Array) => takeHost(x.div(SIGMA_D));

/** Builds an eval set: `perPrompt` noises for every teacher prompt, scales cycling through the list. */
export function makeEvalSet(problem: GmmTeacher, cfg: GmmConfig, perPrompt: number, k: Key): EvalSet {
  const d = problem.spec.dim;
  const P = problem.spec.prompts.length;
  const prompts = globalThis.Array.from({ length: P * perPrompt }, (_, i) => Math.floor(i / perPrompt));
  const guidance = prompts.map((_, i) => cfg.guidance[i % cfg.guidance.length]);
  const noise = normal(k, prompts.length * d);
  const h = -(Math.PI / 2) / cfg.eval.odeSteps;
  // One compiled RK4 step, applied odeSteps times (compiling the unrolled solve is slow).
  const step = jit((x: Array, t: Array, c: Array, u: Array, w: Array) => {
    const y = rk4Step(problem.velocity, x, t, h, c, u, w);
    c.dispose(); u.dispose(); w.dispose();
    return y;
  });
  const x0 = odeEndpoint(problem.velocity, np.array(noise).reshape([prompts.length, d]), conditionRows(prompts, P),
    conditionRows(prompts.map(() => -1), P), column(guidance), cfg.eval.odeSteps, step);
  step.dispose();
  return { noise, prompts, guidance, reference: toZ(x0) };
}

/** Student samples (z units) for an eval set with `steps` sampling steps; `params` is not consumed. */
export function studentSamples<P extends Tree>(student: Student<P>, params: P, set: EvalSet, steps: number, dim: number, promptCount: number, k: Key, eta?: number): Float32Array {
  const n = set.prompts.length;
  const timesteps = studentTimesteps(steps);
  const noises = [np.array(set.noise).reshape([n, dim])];
  for (let i = 1; i < steps; i++) noises.push(np.array(normal(foldIn(k, i), n * dim)).reshape([n, dim]));
  const run = jit((p: P, ns: Array[], c: Array, w: Array) => {
    const x0 = sampleStudent(studentAsVelocity(student, p, w), ns, timesteps, c, eta);
    tree.dispose(p); w.dispose();
    return x0;
  });
  const x0 = run(tree.ref(params) as never, noises, conditionRows(set.prompts, promptCount), column(set.guidance));
  run.dispose();
  return toZ(x0);
}

/** The teacher's own sampler along the (unjittered) route, `steps` steps, for an eval set (z units). */
export function teacherSamples(problem: GmmTeacher, set: EvalSet, shift: number, steps: number): Float32Array {
  const n = set.prompts.length;
  const d = problem.spec.dim;
  const P = problem.spec.prompts.length;
  const run = jit((x: Array, route: Array, c: Array, u: Array, w: Array) => {
    const traj = sampleTrajectory(problem.velocity, x, route, c, u, w);
    tree.dispose([traj.points, traj.velocities]);
    return traj.endpoint;
  });
  const x0 = run(np.array(set.noise).reshape([n, d]).mul(SIGMA_D), np.array(routeAngles(shift, steps)),
    conditionRows(set.prompts, P), conditionRows(set.prompts.map(() => -1), P), column(set.guidance));
  run.dispose();
  return toZ(x0);
}

/** Mean over prompts of the sliced W2 between two sample sets laid out like `set`. */
export function promptAveragedSw2(set: EvalSet, a: Float32Array, b: Float32Array, d: number, projections: number, k: Key): number {
  const prompts = [...new Set(set.prompts)];
  let total = 0;
  for (const p of prompts) {
    const rows = set.prompts.flatMap((q, i) => (q === p ? [i] : []));
    const pick = (x: Float32Array) => Float32Array.from(rows.flatMap((i) => globalThis.Array.from(x.subarray(i * d, (i + 1) * d))));
    total += slicedWasserstein2(pick(a), pick(b), d, projections, foldIn(k, p));
  }
  return total / prompts.length;
}

export type Metrics = {
  consistency_rel_mse_1step: number;
  sw2_1step: number;
  sw2_2step: number;
  sw2_teacher_euler16: number;
  eval_samples: number;
};

/** Lets the event loop run (a Ctrl-C is heard) between the evaluation's long synchronous stages. */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** All metrics of issue #2 for a student. */
export async function evaluateStudent<P extends Tree>(student: Student<P>, params: P, problem: GmmTeacher, cfg: GmmConfig, set: EvalSet, k: Key): Promise<Metrics> {
  const d = problem.spec.dim;
  const P = problem.spec.prompts.length;
  const one = studentSamples(student, params, set, 1, d, P, k);
  await breathe();
  const two = studentSamples(student, params, set, 2, d, P, k, cfg.eval.eta);
  await breathe();
  const euler = teacherSamples(problem, set, cfg.route.shift, 16);
  const sw2 = async (x: Float32Array) => {
    await breathe();
    return promptAveragedSw2(set, x, set.reference, d, cfg.eval.projections, foldIn(k, 99));
  };
  return {
    consistency_rel_mse_1step: relativeMse(one, set.reference),
    sw2_1step: await sw2(one),
    sw2_2step: await sw2(two),
    sw2_teacher_euler16: await sw2(euler),
    eval_samples: set.prompts.length,
  };
}
