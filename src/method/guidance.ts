/** Classifier-free guidance of the teacher (spec §2). */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";

/**
 * Guided physical velocity from the unit velocities of the conditional and unconditional
 * (empty prompt) passes, per-sample scale w [B, 1]:
 * `dx/dt = σ_d·F_uncond + w·(σ_d·F_cond − σ_d·F_uncond)`.
 */
export function cfgVelocity(fCond: Array, fUncond: Array, w: Array): Array {
  return fUncond.ref.add(w.mul(fCond.sub(fUncond))).mul(SIGMA_D);
}

/**
 * Where guidance applies, as TrigFlow angles [lo, hi] ⊆ [0, π/2]; outside it the teacher runs
 * with w = 1 (conditional only). Guidance at high noise is what collapses diversity and
 * saturates samples (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval").
 */
export type GuidanceInterval = readonly [number, number];

/** Guidance everywhere: the spec's CFG. */
export const GUIDE_EVERYWHERE: GuidanceInterval = [0, Math.PI / 2];

/** Angle of flow time s: `tan t = s / (1 − s)` (inverse of `flowTime`). */
export function angleOfFlowTime(s: number): number {
  return Math.atan2(s, 1 - s);
}

/** A guidance interval given in flow time [s_lo, s_hi] ⊆ [0, 1] (s = 1 is pure noise), as angles. */
export function flowTimeInterval(s: readonly number[]): GuidanceInterval {
  return [angleOfFlowTime(s[0]), angleOfFlowTime(s[1])];
}

/** Whether an interval covers every angle (then no selection is traced). */
export function guidesEverywhere(interval: GuidanceInterval): boolean {
  return interval[0] <= 0 && interval[1] >= Math.PI / 2 - 1e-9;
}

/** The scale in effect at angle t ([B, 1] or [1, 1]): w inside the interval, 1 outside. */
export function scaleAt(w: Array, t: Array, interval: GuidanceInterval): Array {
  if (guidesEverywhere(interval)) {
    t.dispose();
    return w;
  }
  const [lo, hi] = interval;
  const ones = np.onesLike(w.ref);
  return np.where(np.less(t.ref, lo), ones.ref, np.where(np.less(hi, t), ones, w));
}

/** A conditional TrigFlow model: unit velocity F(u, t, cond) [B, d], u = x_t/σ_d [B, d], t [B, 1] or [1, 1]. */
export type TrigVelocity = (u: Array, t: Array, cond: Array) => Array;

/**
 * The teacher's guided velocity dx/dt at x_t (physical scale), from a conditional and an
 * empty-prompt pass, run as one batch of 2B rows (one network call: fewer, larger matmuls);
 * guidance w applies inside `interval` only.
 */
export function teacherCfgVelocity(
  teacher: TrigVelocity, xt: Array, t: Array, cond: Array, uncond: Array, w: Array, interval: GuidanceInterval = GUIDE_EVERYWHERE,
): Array {
  const B = xt.shape[0];
  const u = xt.div(SIGMA_D);
  const scale = scaleAt(w, t.ref, interval);
  const tt = t.shape[0] === B && B > 1 ? np.concatenate([t.ref, t], 0) : t;
  const f = teacher(np.concatenate([u.ref, u], 0), tt, np.concatenate([cond, uncond], 0));
  const [fCond, fUncond] = np.split(f, 2, 0);
  return cfgVelocity(fCond, fUncond, scale);
}
