/**
 * Trajectory sampling, the heart of TBCM (spec §3): run the teacher's own sampler from noise
 * along a (jittered) route and keep the states it passes through as training pairs.
 * No images and no VAE are involved.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import { type Key, uniform } from "../numerics/random.ts";
import { type GuidanceSchedule, type Teacher, GUIDE_EVERYWHERE, teacherCfgVelocity } from "./guidance.ts";
import { trigflowStep } from "./trigflow.ts";

export type Trajectory = {
  /** States P[i] at angle d[i], i = 0..N−1, each [B, d] (P[0] is the noise). */
  points: Array[];
  /** Guided teacher velocities V[i] = dx/dt at (P[i], d[i]), each [B, d]. */
  velocities: Array[];
  /** The state after the last step, at t = 0: the teacher's sample x0 [B, d]. */
  endpoint: Array;
};

/**
 * The teacher pass: from `x` = σ_d·noise at d[0], for i = 0..N−1 record (P[i], V[i]) and step
 * `x ← cos Δ·x − sin Δ·V[i]` with `Δ = d[i] − d[i+1]` (the last step lands on t = 0).
 * `route` [N] holds the angles d (an array so one compiled program serves every jitter).
 */
export function sampleTrajectory(
  teacher: Teacher, x: Array, route: Array, cond: Array, uncond: Array, w: Array, schedule: GuidanceSchedule = GUIDE_EVERYWHERE,
): Trajectory {
  const N = route.shape[0];
  const angles = np.split(route, N).map((a) => a.reshape([1, 1]));
  const points: Array[] = [];
  const velocities: Array[] = [];
  for (let i = 0; i < N; i++) {
    const v = teacherCfgVelocity(teacher, x.ref, angles[i].ref, cond.ref, uncond.ref, w.ref, schedule);
    points.push(x.ref);
    velocities.push(v.ref);
    const delta = i < N - 1 ? angles[i].sub(angles[i + 1].ref) : angles[i];
    x = trigflowStep(x, v, delta);
  }
  cond.dispose(); uncond.dispose(); w.dispose(); // each step took its own references
  return { points, velocities, endpoint: x };
}

/**
 * Training pairs of a trajectory: points 1..N−1 (neither the pure-noise start nor the endpoint),
 * stacked step-major: row (i−1)·B + b is prompt b at step i. Returns `[xt, dxdt]`, each
 * [(N−1)·B, d]; the angle of row r is d[1 + floor(r/B)].
 */
export function trainingPairs(traj: Trajectory): [Array, Array] {
  const [noise, ...points] = traj.points;
  const [, ...velocities] = traj.velocities;
  // the pure-noise start, its velocity and the endpoint are not training pairs (jax-js: consumed here)
  noise.dispose();
  traj.velocities[0].dispose();
  traj.endpoint.dispose();
  return [np.concatenate(points, 0), np.concatenate(velocities, 0)];
}

/**
 * Training pairs of a re-noised leg (a trajectory started from a finished sample re-noised to an
 * angle below π/2): every point, its start included, stacked step-major like `trainingPairs`.
 * Returns `[xt, dxdt, endpoint]`; the angle of row r is the leg's d[floor(r/B)].
 */
export function legPairs(traj: Trajectory): [Array, Array, Array] {
  return [np.concatenate(traj.points, 0), np.concatenate(traj.velocities, 0), traj.endpoint];
}

/**
 * The black filter (spec §3): `m = mean((x0/σ_d − z_black)²)` per prompt; if m < 1, drop that
 * prompt's pairs with probability 1 − m. `endpoint` is [B·d] on the host. Returns keep ∈ {0, 1}
 * per prompt.
 */
export function blackFilter(k: Key, endpoint: Float32Array, zBlack: Float32Array): Float32Array {
  const d = zBlack.length;
  const B = endpoint.length / d;
  const u = uniform(k, B);
  const keep = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += (endpoint[b * d + j] / SIGMA_D - zBlack[j]) ** 2;
    m /= d;
    keep[b] = m >= 1 || u[b] < m ? 1 : 0;
  }
  return keep;
}
