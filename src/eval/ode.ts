/** High-accuracy solution of the teacher's guided probability-flow ODE (the ground truth). */
import type { Array } from "@jax-js/jax";
import { numpy as np } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import { type TrigVelocity, teacherCfgVelocity } from "../method/guidance.ts";

/**
 * Classical RK4 on `dx/dt = teacher_cfg_velocity(x, t)` from t = π/2 (x = σ_d·noise) to t = 0,
 * with `steps` equal steps in t. Returns x0 [B, d] (TrigFlow scale). Consumes noise, cond, uncond, w.
 */
export function odeEndpoint(teacher: TrigVelocity, noise: Array, cond: Array, uncond: Array, w: Array, steps: number): Array {
  const h = -(Math.PI / 2) / steps;
  const f = (x: Array, t: number) => teacherCfgVelocity(teacher, x, np.full([1, 1], t), cond.ref, uncond.ref, w.ref);
  let x = noise.mul(SIGMA_D);
  for (let i = 0; i < steps; i++) {
    const t = Math.PI / 2 + i * h;
    const k1 = f(x.ref, t);
    const k2 = f(x.ref.add(k1.ref.mul(h / 2)), t + h / 2);
    const k3 = f(x.ref.add(k2.ref.mul(h / 2)), t + h / 2);
    const k4 = f(x.ref.add(k3.ref.mul(h)), t + h);
    x = x.add(k1.add(k2.mul(2)).add(k3.mul(2)).add(k4).mul(h / 6));
  }
  cond.dispose(); uncond.dispose(); w.dispose();
  return x;
}
