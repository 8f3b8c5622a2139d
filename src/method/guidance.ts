/** Classifier-free guidance of the teacher (spec §2). */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import { flowTime } from "./flowToTrig.ts";

/**
 * Guided physical velocity from the unit velocities of the conditional and unconditional
 * (empty prompt) passes, per-sample scale w [B, 1]:
 * `dx/dt = σ_d·F_uncond + w·(σ_d·F_cond − σ_d·F_uncond)`.
 */
export function cfgVelocity(fCond: Array, fUncond: Array, w: Array): Array {
  return fUncond.ref.add(w.mul(fCond.sub(fUncond))).mul(SIGMA_D);
}

/**
 * Where the teacher's guidance acts, in flow time s (s = 1 is pure noise): w inside
 * `interval` = [s_lo, s_hi], w = 1 (conditional only) outside. With `ramp` > 0 each edge inside
 * (0, 1) is a logistic switch of that width instead of a step, so that the guided ODE stays smooth
 * in t (a consistency student cannot follow a jump of the velocity). Guidance at high noise is
 * what collapses diversity and saturates samples (Kynkäänniemi et al. 2024, "Applying guidance
 * in a limited interval").
 */
export type GuidanceSchedule = { readonly interval: readonly number[]; readonly ramp: number };

/** Guidance everywhere: the spec's CFG. */
export const GUIDE_EVERYWHERE: GuidanceSchedule = { interval: [0, 1], ramp: 0 };

export function guidesEverywhere(g: GuidanceSchedule): boolean {
  return g.interval[0] <= 0 && g.interval[1] >= 1;
}

const logistic = (z: number) => 1 / (1 + Math.exp(-z));

/** The share of (w − 1) in effect at flow time s: `w(s) = 1 + (w − 1)·share(s)`. */
export function guidanceShare(s: number, g: GuidanceSchedule): number {
  const [lo, hi] = g.interval;
  if (g.ramp <= 0) return s >= lo && s <= hi ? 1 : 0;
  return (hi < 1 ? logistic((hi - s) / g.ramp) : 1) * (lo > 0 ? logistic((s - lo) / g.ramp) : 1);
}

/** The scale in effect at TrigFlow angle t ([B, 1] or [1, 1]), `guidanceShare` traced: 1 + (w − 1)·share(s(t)). */
export function scaleAt(w: Array, t: Array, g: GuidanceSchedule): Array {
  if (guidesEverywhere(g)) {
    t.dispose(); // jax-js: every branch consumes its arguments; this one does not need t
    return w;
  }
  const [lo, hi] = g.interval;
  const s = flowTime(t);
  let share: Array;
  if (g.ramp <= 0) {
    share = np.where(np.less(s.ref, lo), 0, np.where(np.less(hi, s), 0, 1));
  } else {
    const sigmoid = (z: Array) => np.reciprocal(np.exp(z.neg()).add(1));
    const upper = hi < 1 ? sigmoid(np.subtract(hi, s.ref).div(g.ramp)) : np.onesLike(s.ref);
    share = lo > 0 ? upper.mul(sigmoid(s.sub(lo).div(g.ramp))) : (s.dispose(), upper); // no lower edge: s is not needed again
  }
  return w.sub(1).mul(share).add(1);
}

/** A conditional TrigFlow model: unit velocity F(u, t, cond) [B, d], u = x_t/σ_d [B, d], t [B, 1] or [1, 1]. */
export type TrigVelocity = (u: Array, t: Array, cond: Array) => Array;

/**
 * A teacher as the method sees it: a conditional velocity that classifier-free guidance combines
 * with the empty prompt's (two passes), or a guidance-distilled model that takes the scale as an
 * input (Flux-dev's kind: `guided`, one pass, F(u, t, cond, w) with w [B, 1]).
 */
export type Teacher = TrigVelocity | { readonly guided: (u: Array, t: Array, cond: Array, w: Array) => Array };

/**
 * The teacher's guided velocity dx/dt at x_t (physical scale), from a conditional and an
 * empty-prompt pass, run as one batch of 2B rows (one network call: fewer, larger matmuls), or
 * from one pass of a teacher that takes the scale itself; guidance w acts as `schedule` says.
 */
export function teacherCfgVelocity(
  teacher: Teacher, xt: Array, t: Array, cond: Array, uncond: Array, w: Array, schedule: GuidanceSchedule = GUIDE_EVERYWHERE,
): Array {
  const B = xt.shape[0];
  const u = xt.div(SIGMA_D);
  const scale = scaleAt(w, t.ref, schedule);
  if (typeof teacher !== "function") {
    uncond.dispose();
    return teacher.guided(u, t, cond, scale.shape[0] === B ? scale : np.broadcastTo(scale, [B, 1])).mul(SIGMA_D);
  }
  const tt = t.shape[0] === B && B > 1 ? np.concatenate([t.ref, t], 0) : t;
  const f = teacher(np.concatenate([u.ref, u], 0), tt, np.concatenate([cond, uncond], 0));
  const [fCond, fUncond] = np.split(f, 2, 0);
  return cfgVelocity(fCond, fUncond, scale);
}
