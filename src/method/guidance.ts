/** Classifier-free guidance of the teacher (spec §2). */
import type { Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";

/**
 * Guided physical velocity from the unit velocities of the conditional and unconditional
 * (empty prompt) passes, per-sample scale w [B, 1]:
 * `dx/dt = σ_d·F_uncond + w·(σ_d·F_cond − σ_d·F_uncond)`.
 */
export function cfgVelocity(fCond: Array, fUncond: Array, w: Array): Array {
  return fUncond.ref.add(w.mul(fCond.sub(fUncond))).mul(SIGMA_D);
}

/** A conditional TrigFlow model: unit velocity F(u, t, cond), u = x_t/σ_d [B, d], t [B, 1] or [1, 1]. */
export type TrigVelocity = (u: Array, t: Array, cond: Array) => Array;

/** The teacher's guided velocity dx/dt at x_t (physical scale), from a conditional and an empty-prompt pass. */
export function teacherCfgVelocity(teacher: TrigVelocity, xt: Array, t: Array, cond: Array, uncond: Array, w: Array): Array {
  const u = xt.div(SIGMA_D);
  const fCond = teacher(u.ref, t.ref, cond);
  const fUncond = teacher(u, t, uncond);
  return cfgVelocity(fCond, fUncond, w);
}
