/**
 * The continuous-time consistency (sCM) loss with tangent normalisation and adaptive weighting
 * (Lu & Song 2024, arXiv 2410.11081; spec §4). Shared by TBCM and the sCM baseline.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D, TANGENT_NORM_EPS } from "../config/defaults.ts";
import { denoise } from "./trigflow.ts";

export type TangentSchedule = {
  /** Steps over which r rises linearly from 0 to 1. */
  readonly warmup: number;
  /** Step at which the calm-down towards `rFinal` starts (Infinity: never). */
  readonly calmStart: number;
  /** Length of the calm-down. */
  readonly calmSteps: number;
  /** r after the calm-down. */
  readonly rFinal: number;
};

/**
 * Tangent ratio r at a step: `r = min(1, step/warmup)`, `p = clamp((step − calmStart)/calmSteps, 0, 1)`,
 * `r ← r·(1 − p) + rFinal·p`.
 */
export function tangentRatio(step: number, s: TangentSchedule): number {
  const r = s.warmup > 0 ? Math.min(1, step / s.warmup) : 1;
  if (!Number.isFinite(s.calmStart)) return r;
  const p = Math.min(1, Math.max(0, (step - s.calmStart) / Math.max(1, s.calmSteps)));
  return r * (1 - p) + s.rFinal * p;
}

/**
 * JVP tangents for `F(u, t)` along the teacher's ODE: `v_u = cos t·sin t·(dx/dt)/σ_d`,
 * `v_t = cos t·sin t`. dxdt [B, d], t [B, 1].
 */
export function jvpTangents(dxdt: Array, t: Array): [Array, Array] {
  const cs = np.cos(t.ref).mul(np.sin(t));
  return [dxdt.mul(cs.ref).div(SIGMA_D), cs];
}

/**
 * The consistency tangent `g = −cos²t·(σ_d·F⁻ − dx/dt) − r·(cos t·sin t·x_t + σ_d·J)`,
 * with F⁻ the student's (no-gradient) output and J its JVP along the ODE.
 */
export function consistencyTangent(fMinus: Array, jvp: Array, xt: Array, dxdt: Array, t: Array, r: Array | number): Array {
  const cos = np.cos(t.ref);
  const sin = np.sin(t);
  const pull = np.square(cos.ref).mul(fMinus.mul(SIGMA_D).sub(dxdt)).neg();
  const drift = cos.mul(sin).mul(xt).add(jvp.mul(SIGMA_D));
  return pull.sub(drift.mul(r));
}

/** Per-sample normalisation over all latent elements: `g / (‖g‖₂ + 0.1)`. Returns [g, ‖g‖]. */
export function normalizeTangent(g: Array): [Array, Array] {
  const norm = np.sqrt(np.sum(np.square(g.ref), 1, { keepdims: true })); // [B, 1]
  return [g.div(norm.ref.add(TANGENT_NORM_EPS)), norm];
}

/** Adaptive weight of the loss: `w_t = 1/(σ_d·tan t)`. */
export function adaptiveWeight(t: Array): Array {
  return np.reciprocal(np.tan(t).mul(SIGMA_D));
}

/**
 * Squared distance of the student's x̂0 = `denoise(x_t, F, t)` = cos t·x_t − sin t·σ_d·F (at t = π/2
 * the 1-step sample) to the teacher's ODE endpoint x0 of the same trajectory,
 * per sample in data units: `mean_j((x̂0 − x0)_j²)/σ_d²` [B, 1]. TBCM samples whole trajectories,
 * so for every state x_t on one the consistency function's exact value, f(x_t, t) = x0, comes for
 * free: this is the error the 1-step evaluation measures, available as a training signal.
 */
export function endpointError(F: Array, xt: Array, t: Array, x0: Array): Array {
  return np.mean(np.square(denoise(xt, F, t).sub(x0)), 1, { keepdims: true }).div(SIGMA_D * SIGMA_D);
}

/** The loss and what the spec says to log with it. */
export type LossParts = {
  /** `mean[keep·((w_t/e^logvar)·mse + logvar)]`, what is minimised. */
  loss: Array;
  /** The same without the logvar term and scaling: `mean[keep·w_t·mse]`. */
  lossNoLogvar: Array;
  /** Without weight and logvar: `mean[keep·mse]`. */
  lossNoWeight: Array;
};

/**
 * `loss = mean[(w_t/exp(logvar))·(F − F⁻ − g)² + logvar]`, each sample times its keep mask;
 * the square is averaged over latent elements, the mean is over the batch.
 * F [B, d] and logvar [B, 1] carry gradients; target = F⁻ + g [B, d] does not.
 */
export function scmLoss(F: Array, logvar: Array, target: Array, t: Array, keep: Array): LossParts {
  const mse = np.mean(np.square(F.sub(target)), 1, { keepdims: true }); // [B, 1]
  const weight = adaptiveWeight(t);
  const weighted = weight.mul(mse.ref);
  const perSample = weighted.ref.mul(np.exp(logvar.ref.neg())).add(logvar);
  return {
    loss: np.mean(perSample.mul(keep.ref)),
    lossNoLogvar: np.mean(weighted.mul(keep.ref)),
    lossNoWeight: np.mean(mse.mul(keep)),
  };
}
