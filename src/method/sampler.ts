/** The sCM sampler of the student (spec §6): denoise, re-noise, repeat; 1, 2 or N steps. */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { SIGMA_D, TWO_STEP_MID, ROUTE_SHIFT, RENOISE_ETA, TAIL_END, type MultiStepRule } from "../config/defaults.ts";
import { shiftSigma } from "./route.ts";
import type { TrigVelocity } from "./guidance.ts";
import { denoise, noisy } from "./trigflow.ts";

/**
 * Student timesteps, a decreasing list from π/2 to 0: 1 step `[π/2, 0]`, 2 steps
 * `[π/2, tMid, 0]` (tMid 1.0 in the reference validation), n ≥ 3 steps by `rule`:
 * - `shifted` (the spec's): the teacher's shifted schedule `t_i = atan(σ_i/(1−σ_i))`, `σ_i = shift(1 − i/n)`;
 * - `from_mid`: `[π/2, tMid, …, 0]`, evenly spaced in angle below tMid, `t_i = tMid·(n − i)/(n − 1)`.
 *   Every list then begins as the 2-step one and the extra steps re-noise less and less: each
 *   re-noising of a guided student's sample guides it again (its accuracy rises and its spread
 *   shrinks with every step), so late, small re-noisings keep n steps near the 2-step sample
 *   (bench/RESULTS.md §27).
 * - `tail`: `[π/2, tMid, …, TAIL_END, 0]`, geometric in angle below tMid, `t_i = tMid·(TAIL_END/tMid)^((i−1)/(n−2))`
 *   (4 steps: 0.7, 0.265, 0.1). The extra re-noisings sit at low noise, where they sharpen texture
 *   without re-drawing the image; at 4 steps a lower FD than from_mid at equal accuracy (§29).
 *   Where tMid ≤ TAIL_END it is from_mid.
 */
export function studentTimesteps(steps: number, tMid = TWO_STEP_MID, shift = ROUTE_SHIFT, rule: MultiStepRule = "shifted"): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`sampling steps must be an integer ≥ 1, got ${steps}`);
  if (steps === 1) return [Math.PI / 2, 0];
  if (steps === 2) return [Math.PI / 2, tMid, 0];
  if (rule === "tail" && tMid > TAIL_END) {
    return [Math.PI / 2, ...globalThis.Array.from({ length: steps - 1 }, (_, i) => tMid * (TAIL_END / tMid) ** (i / (steps - 2))), 0];
  }
  if (rule === "from_mid" || rule === "tail") return [Math.PI / 2, ...globalThis.Array.from({ length: steps }, (_, i) => tMid * ((steps - 1 - i) / (steps - 1)))];
  return globalThis.Array.from({ length: steps + 1 }, (_, i) => {
    const sigma = shiftSigma(1 - i / steps, shift);
    return i === 0 ? Math.PI / 2 : Math.atan(sigma / (1 - sigma));
  });
}

/** Checks a custom timestep list: starts at π/2, strictly decreasing, ends at 0. */
export function checkTimesteps(ts: readonly number[]): void {
  const ok = ts.length >= 2 && Math.abs(ts[0] - Math.PI / 2) < 1e-6 && ts[ts.length - 1] === 0
    && ts.every((t, i) => i === 0 || t < ts[i - 1]);
  if (!ok) throw new Error(`timesteps must start at π/2, decrease strictly and end at 0; got [${ts.join(", ")}]`);
}

/**
 * One sCM step from angle s to t: `x0 = cos s·x − sin s·σ_d·F(x/σ_d, s)`, then
 * `x = cos t·x0 + sin t·σ_d·n` (at t = 0 this is x0). `noise` z is unit Gaussian, consumed.
 *
 * `eta` < 1 re-noises with `n = η·z + √(1 − η²)·ε̂`, where `ε̂ = (x − cos s·x0)/(sin s·σ_d)` is
 * the noise this sample's own x0 implies. The spec's sampler is η = 1. Carrying part of ε̂
 * correlates the next step with the last, which *widens* the samples: for an exact consistency
 * model of Gaussian data the 2-step variance is `1 + √(1 − η²)·sin 2t` times the true one
 * (test/method/sampler.test.ts). It is a diversity knob for students of over-guided teachers,
 * not a more exact sampler.
 */
export function scmStep(model: TrigVelocity, x: Array, s: number, t: number, cond: Array, noise: Array, eta = RENOISE_ETA): Array {
  if (!(eta >= 0 && eta <= 1)) throw new Error(`the re-noising η must be in [0, 1], got ${eta}`);
  const sCol = np.full([1, 1], s);
  const x0 = denoise(x.ref, model(x.ref.div(SIGMA_D), sCol.ref, cond), sCol);
  // jax-js consumes arguments: x is needed again only for the implied noise (η < 1), the noise only before t = 0
  if (t === 0 || eta === 1) x.dispose();
  if (t === 0) {
    noise.dispose();
    return x0;
  }
  let n = noise;
  if (eta < 1) {
    const implied = x.sub(x0.ref.mul(Math.cos(s))).div(Math.sin(s) * SIGMA_D); // ε̂
    n = noise.mul(eta).add(implied.mul(Math.sqrt(1 - eta * eta)));
  }
  return noisy(x0, n.mul(SIGMA_D), np.full([1, 1], t));
}

/**
 * Samples with the student: `noises[0]` is the start (unit Gaussian, scaled by σ_d here), the
 * rest re-noise after each step but the last (pass as many as timesteps − 1), with fresh-noise
 * share `eta` (see `scmStep`). Returns x0 [B, d] in TrigFlow scale (σ_d·z).
 */
export function sampleStudent(model: TrigVelocity, noises: Array[], timesteps: readonly number[], cond: Array, eta = RENOISE_ETA): Array {
  checkTimesteps(timesteps);
  if (noises.length !== timesteps.length - 1) {
    throw new Error(`${timesteps.length - 1} sampling steps need ${timesteps.length - 1} noises, got ${noises.length}`);
  }
  let x = noises[0].mul(SIGMA_D);
  for (let i = 0; i + 1 < timesteps.length; i++) {
    const next = i + 1 < noises.length ? noises[i + 1] : np.zerosLike(x.ref);
    x = scmStep(model, x, timesteps[i], timesteps[i + 1], cond.ref, next, eta);
  }
  cond.dispose(); // each step took its own reference
  return x;
}

/**
 * A student at fixed parameters and guidance scales as a TrigVelocity for `sampleStudent`: the
 * unit velocity of `student(params, u, t, cond, w)`, its logvar dropped. `params` and `w` are
 * borrowed (a reference per call); the caller disposes them.
 */
export function studentAsVelocity<P>(
  student: (p: P, u: Array, t: Array, cond: Array, w: Array) => [Array, Array], params: P, w: Array,
): TrigVelocity {
  return (u, t, cond) => {
    const [F, logvar] = student(tree.ref(params as never) as P, u, t, cond, w.ref);
    logvar.dispose(); // sampling uses the velocity only
    return F;
  };
}
