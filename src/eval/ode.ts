/** High-accuracy solution of the teacher's guided probability-flow ODE (the ground truth). */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import { type TrigVelocity, teacherCfgVelocity } from "../method/guidance.ts";

/**
 * One classical RK4 step of `dx/dt = teacher_cfg_velocity(x, t)` from angle t ([1, 1]) to t + h.
 * Consumes x and t, not the conditions.
 */
export function rk4Step(teacher: TrigVelocity, x: Array, t: Array, h: number, cond: Array, uncond: Array, w: Array): Array {
  const f = (y: Array, at: Array) => teacherCfgVelocity(teacher, y, at, cond.ref, uncond.ref, w.ref);
  const k1 = f(x.ref, t.ref);
  const k2 = f(x.ref.add(k1.ref.mul(h / 2)), t.ref.add(h / 2));
  const k3 = f(x.ref.add(k2.ref.mul(h / 2)), t.ref.add(h / 2));
  const k4 = f(x.ref.add(k3.ref.mul(h)), t.add(h));
  return x.add(k1.add(k2.mul(2)).add(k3.mul(2)).add(k4).mul(h / 6));
}

/**
 * RK4 from t = π/2 (x = σ_d·noise) to t = 0 in `steps` equal steps. Returns x0 [B, d] (TrigFlow
 * scale). `step` defaults to `rk4Step`; pass a compiled one to solve large batches fast.
 * Consumes noise, cond, uncond and w.
 */
export function odeEndpoint(
  teacher: TrigVelocity, noise: Array, cond: Array, uncond: Array, w: Array, steps: number,
  step: (x: Array, t: Array, cond: Array, uncond: Array, w: Array) => Array =
    (x, t, c, u, ww) => { const y = rk4Step(teacher, x, t, -(Math.PI / 2) / steps, c, u, ww); c.dispose(); u.dispose(); ww.dispose(); return y; },
): Array {
  const h = -(Math.PI / 2) / steps;
  let x = noise.mul(SIGMA_D);
  for (let i = 0; i < steps; i++) {
    x = step(x, np.full([1, 1], Math.PI / 2 + i * h), cond.ref, uncond.ref, w.ref);
    // jax-js evaluates lazily: realise x now and then, or thousands of chained steps overflow the stack
    if (i % 256 === 255) x.ref.dataSync();
  }
  cond.dispose(); uncond.dispose(); w.dispose();
  return x;
}
