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

/** A conditional TrigFlow model: unit velocity F(u, t, cond) [B, d], u = x_t/σ_d [B, d], t [B, 1] or [1, 1]. */
export type TrigVelocity = (u: Array, t: Array, cond: Array) => Array;

/**
 * The teacher's guided velocity dx/dt at x_t (physical scale), from a conditional and an
 * empty-prompt pass, run as one batch of 2B rows (one network call: fewer, larger matmuls).
 */
export function teacherCfgVelocity(teacher: TrigVelocity, xt: Array, t: Array, cond: Array, uncond: Array, w: Array): Array {
  const B = xt.shape[0];
  const u = xt.div(SIGMA_D);
  const tt = t.shape[0] === B && B > 1 ? np.concatenate([t.ref, t], 0) : t;
  const f = teacher(np.concatenate([u.ref, u], 0), tt, np.concatenate([cond, uncond], 0));
  const [fCond, fUncond] = np.split(f, 2, 0);
  return cfgVelocity(fCond, fUncond, w);
}
