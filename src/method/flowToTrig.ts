/**
 * Training-free conversion of a flow-matching velocity model into a TrigFlow model
 * (Sana-Sprint, arXiv 2503.09641; spec §2). Flow matching: `x_s = (1−s)·z + s·ε`, `v = ε − z`.
 */
import { numpy as np, type Array } from "@jax-js/jax";

/** A flow-matching velocity model with everything but (x_s, s) bound: x_s [B, D], s [B, 1]. */
export type FlowVelocity = (xFlow: Array, s: Array) => Array;

/** Flow time of a TrigFlow angle: `s = sin t / (sin t + cos t)`. */
export function flowTime(t: Array): Array {
  const sin = np.sin(t.ref);
  return sin.ref.div(sin.add(np.cos(t)));
}

/** TrigFlow angle of flow time s: `tan t = s / (1 − s)` (inverse of `flowTime`). */
export function angleOfFlowTime(s: number): number {
  return Math.atan2(s, 1 - s);
}

/** Input scale between the two parameterisations: `k = sqrt(s² + (1−s)²)`. */
export function flowScale(s: Array): Array {
  return np.sqrt(np.square(s.ref).add(np.square(np.subtract(1, s))));
}

/**
 * TrigFlow unit velocity F(u, t) of a flow model, with `u = x_t/σ_d`:
 * `x_flow = u·k`, `v = flow(x_flow, s)`, `F = ((1−2s)·x_flow + (1−2s+2s²)·v) / k`.
 */
export function flowToTrigVelocity(flow: FlowVelocity, u: Array, t: Array): Array {
  const s = flowTime(t);
  const k = flowScale(s.ref);
  const xFlow = u.mul(k.ref);
  const v = flow(xFlow.ref, s.ref);
  const oneMinus2s = np.subtract(1, s.ref.mul(2));
  const vCoef = oneMinus2s.ref.add(np.square(s).mul(2));
  return xFlow.mul(oneMinus2s).add(v.mul(vCoef)).div(k);
}
