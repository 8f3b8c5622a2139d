/**
 * TrigFlow (sCM, Lu & Song 2024; spec §2): x_t = cos t·x0 + sin t·n with σ_d-scaled data and
 * noise. Latents are flat: x is [B, D], a per-sample angle t is a column [B, 1].
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";

/** Exact first-order TrigFlow step from t to t−Δ with velocity V: `x = cos Δ·x − sin Δ·V`. */
export function trigflowStep(x: Array, velocity: Array, delta: Array | number): Array {
  if (typeof delta === "number") return x.mul(Math.cos(delta)).sub(velocity.mul(Math.sin(delta)));
  return x.mul(np.cos(delta.ref)).sub(velocity.mul(np.sin(delta)));
}

/** The consistency function (denoiser): `f(x_t, t) = cos t·x_t − sin t·σ_d·F`. */
export function denoise(xt: Array, F: Array, t: Array): Array {
  return xt.mul(np.cos(t.ref)).sub(F.mul(np.sin(t)).mul(SIGMA_D));
}

/** Noising: `x_t = cos t·x0 + sin t·n`, with x0 and n already σ_d-scaled. */
export function noisy(x0: Array, noise: Array, t: Array): Array {
  return x0.mul(np.cos(t.ref)).add(noise.mul(np.sin(t)));
}
