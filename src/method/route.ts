/**
 * The teacher's sampling route in TrigFlow angles (spec §3): the shifted σ-schedule of the
 * teacher's flow sampler, turned into angles t = atan(σ/(1−σ)), and its per-step jitter.
 */
import { type Key, uniform } from "../numerics/random.ts";
import { ROUTE_TRAIN_STEPS } from "../config/defaults.ts";

/** Time shift of flow matching samplers: `σ' = shift·σ / (1 + (shift−1)·σ)`. */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/**
 * The reference route: `steps` decreasing angles from π/2, as the reference computes it in
 * float32 (spec §3 steps 1–3).
 */
export function routeAngles(shift: number, steps: number, trainSteps = ROUTE_TRAIN_STEPS): number[] {
  if (!(steps >= 2) || !Number.isInteger(steps)) throw new Error(`route steps must be an integer ≥ 2, got ${steps}`);
  if (!(shift > 0)) throw new Error(`route shift must be > 0, got ${shift}`);
  const f = Math.fround;
  // 1. a = [T, T−1, …, 1]/T, shifted; only its two ends are used.
  const aMax = f(shiftSigma(f(trainSteps / trainSteps), shift));
  const aMin = f(shiftSigma(f(1 / trainSteps), shift));
  // 2. b = linspace(aMax·T, aMin·T, N)/T, shifted again.
  const hi = f(aMax * trainSteps);
  const lo = f(aMin * trainSteps);
  const route = [f(Math.PI / 2)];
  for (let i = 1; i < steps; i++) {
    const b = f(f(hi + ((lo - hi) * i) / (steps - 1)) / trainSteps);
    const sigma = f(shiftSigma(b, shift));
    // 3. t = atan(σ/(1−σ)); the first angle is π/2 exactly.
    route.push(f(Math.atan(f(sigma / f(1 - sigma)))));
  }
  return route;
}

/**
 * One jittered route per training step: `d[0] = route[0]`, `d[i] ~ U(route[i], route[i−1])`,
 * shared by the whole batch (spec §3).
 */
export function jitterRoute(k: Key, route: readonly number[]): number[] {
  const u = uniform(k, route.length);
  return route.map((angle, i) => (i === 0 ? angle : angle + (route[i - 1] - angle) * u[i]));
}
