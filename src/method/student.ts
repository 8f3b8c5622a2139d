/**
 * The student of spec §2/§4: a network in TrigFlow form, F_θ(x_t/σ_d, t, c, w) and a logvar
 * head. Students that start as a teacher copy are flow-matching models turned into TrigFlow
 * models by the training-free conversion (Sana-Sprint), as here.
 */
import type { Array } from "@jax-js/jax";
import type { Tree } from "../numerics/tree.ts";
import { flowToTrigVelocity } from "./flowToTrig.ts";

/** A student: TrigFlow unit velocity and logvar. u [B, d], t [B, 1], cond [B, …], w [B, 1]. */
export type Student<P extends Tree> = (p: P, u: Array, t: Array, cond: Array, w: Array) => [Array, Array];

/** A flow-matching network with guidance input and logvar head: (x_s, s, cond, w) → [v, logvar]. */
export type FlowStudent<P extends Tree> = (p: P, xFlow: Array, s: Array, cond: Array, w: Array) => [Array, Array];

/** The TrigFlow student of a flow-matching network: F from `flowToTrigVelocity`, logvar as the network gives it. */
export function trigflowStudent<P extends Tree>(flow: FlowStudent<P>): Student<P> {
  return (p, u, t, cond, w) => {
    let logvar: Array | undefined;
    const F = flowToTrigVelocity((xFlow, s) => {
      const [v, lv] = flow(p, xFlow, s, cond, w);
      logvar = lv;
      return v;
    }, u, t);
    return [F, logvar!];
  };
}
