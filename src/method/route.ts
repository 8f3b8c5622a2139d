/**
 * The teacher's sampling route in TrigFlow angles (spec §3): the shifted σ-schedule of the
 * teacher's flow sampler, turned into angles t = atan(σ/(1−σ)), and its per-step jitter.
 */
import { type Key, foldIn, uniform, normal } from "../numerics/random.ts";
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

/**
 * How a training step chooses the angles of its trajectory (config `route.sampling`; the paper
 * compares such choices): `jittered` = the spec's {@link jitterRoute} (the default), `ordered` =
 * the route's own angles, `logit_normal` = {@link logitNormalRoute}, `mixed` = each step one of
 * jittered and logit_normal with probability 1/2 (jittered keeps states near pure noise, where the
 * 1-step map starts; logit-normal puts them mid-route, where multi-step sampling re-enters).
 */
export const ROUTE_SAMPLINGS = ["jittered", "ordered", "logit_normal", "mixed"] as const;
export type RouteSampling = (typeof ROUTE_SAMPLINGS)[number];

/** The route options of a config (its `route` section). */
export type RouteOptions = { readonly sampling: RouteSampling; readonly logitMean: number; readonly logitStd: number };

/**
 * `route.length` angles, the first π/2 (the trajectory starts from pure noise), the others at
 * flow times `s = sigmoid(mean + std·z)`, z ~ N(0, 1) (SD3's logit-normal time distribution),
 * sorted in decreasing angle so the teacher's ODE is integrated along them (the trajectory's
 * steps take each Δ = d[i] − d[i+1], however uneven; equal angles are a zero step).
 * `s = sin t / (sin t + cos t)`, so `t = atan2(s, 1 − s)`.
 */
export function logitNormalRoute(k: Key, route: readonly number[], mean: number, std: number): number[] {
  const z = normal(k, route.length - 1);
  const angles = globalThis.Array.from(z, (zi) => {
    const s = 1 / (1 + Math.exp(-(mean + std * zi)));
    return Math.atan2(s, 1 - s);
  });
  angles.sort((a, b) => b - a);
  return [route[0], ...angles];
}

/** The angles of one training step's trajectory (drawn with key `k`) under `o.sampling`. */
export function drawRoute(k: Key, route: readonly number[], o: RouteOptions): number[] {
  switch (o.sampling) {
    case "mixed": {
      const jittered = uniform(foldIn(k, 1), 1)[0] < 0.5;
      return drawRoute(foldIn(k, 2), route, { ...o, sampling: jittered ? "jittered" : "logit_normal" });
    }
    case "jittered": return jitterRoute(k, route);
    case "ordered": return route.slice();
    case "logit_normal": return logitNormalRoute(k, route, o.logitMean, o.logitStd);
  }
}

/**
 * A re-noised leg's angles: start t_r = lo + u·(hi − lo) (u uniform in [0, 1)), then `steps` even
 * steps in angle to 0: `[t_r·(steps − i)/steps for i = 0..steps−1]` (0 itself is the endpoint).
 */
export function legRoute(u: number, [lo, hi]: readonly number[], steps: number): number[] {
  const start = lo + u * (hi - lo);
  return globalThis.Array.from({ length: steps }, (_, i) => (start * (steps - i)) / steps);
}
