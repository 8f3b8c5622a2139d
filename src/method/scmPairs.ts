/**
 * Training pairs of the sCM baseline (spec §5): real data, noised at a log-normal-ish angle,
 * with the teacher's guided velocity as dx/dt.
 */
import { type Array } from "@jax-js/jax";
import { SIGMA_D, SCM_P_MEAN, SCM_P_STD } from "../config/defaults.ts";
import { type Key, normal } from "../numerics/random.ts";
import { type GuidanceSchedule, type Teacher, GUIDE_EVERYWHERE, teacherCfgVelocity } from "./guidance.ts";
import { noisy } from "./trigflow.ts";

/** `t = atan(exp(τ)/σ_d)`, `τ ~ N(P_mean, P_std²)`, n draws. */
export function scmTimes(k: Key, n: number, pMean = SCM_P_MEAN, pStd = SCM_P_STD): Float32Array {
  return normal(k, n).map((e) => Math.atan(Math.exp(pMean + pStd * e) / SIGMA_D));
}

/**
 * One pair per data sample: `x0 = σ_d·z`, `x_t = cos t·x0 + sin t·σ_d·n`, dx/dt the teacher's
 * guided velocity at (x_t, t). z, noise [B, d] (unit scale), t [B, 1]. Returns `[xt, dxdt]`.
 */
export function scmPairs(
  teacher: Teacher, z: Array, noise: Array, t: Array, cond: Array, uncond: Array, w: Array, schedule: GuidanceSchedule = GUIDE_EVERYWHERE,
): [Array, Array] {
  const xt = noisy(z.mul(SIGMA_D), noise.mul(SIGMA_D), t.ref);
  const dxdt = teacherCfgVelocity(teacher, xt.ref, t, cond, uncond, w, schedule);
  return [xt, dxdt];
}
