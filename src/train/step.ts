/**
 * One sCM training step as a single pure function (compiled once by `jit`):
 * exact JVP of the student along the teacher's ODE → stop-gradient target → value-and-grad of
 * the loss → global-norm clip → optimiser update, with the update skipped when the gradient
 * norm or the loss is not finite (spec §4).
 */
import { numpy as np, lax, jvp, valueAndGrad, tree, type Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import { jvpTangents, consistencyTangent, normalizeTangent, scmLoss, endpointError } from "../method/loss.ts";
import { type LeafState, type Optimizer, guardedUpdate } from "./optim.ts";
import type { Tree } from "../numerics/tree.ts";

/** Training pairs with their conditions. Rows are pairs. */
export type PairBatch = {
  xt: Array; // [B, d], TrigFlow scale
  t: Array; // [B, 1]
  dxdt: Array; // [B, d], the teacher's guided velocity at (x_t, t)
  cond: Array; // [B, C]
  w: Array; // [B, 1], guidance scale
  keep: Array; // [B, 1], 1 to train on the pair, 0 to drop it (black filter)
  x0: Array; // [B, d], the teacher's ODE endpoint of the pair's trajectory (TBCM; zeros for the sCM baseline)
};

/** A student: TrigFlow unit velocity and logvar. u [B, d], t [B, 1], cond [B, C], w [B, 1]. */
export type Student<P extends Tree> = (p: P, u: Array, t: Array, cond: Array, w: Array) => [Array, Array];

/** Names of the entries of a step's `stats` vector, in order. */
export const STEP_STATS = ["loss", "loss_no_logvar", "loss_no_weight", "tangent_norm", "grad_norm", "applied", "endpoint_mse"] as const;

export type TrainStep<P extends Tree> = (
  params: P, state: LeafState[], batch: PairBatch, r: Array, hyper: Record<string, Array>,
) => [P, LeafState[], Array];

/**
 * Builds the step for a student, an optimiser and a gradient clip. `endpointWeight` λ > 0 adds
 * `λ·mean[keep·endpointError]` to the loss: the student's x̂0 at each pair regressed on its
 * trajectory's ODE endpoint (`loss.endpoint_weight`; 0 = the spec's loss alone).
 */
export function makeTrainStep<P extends Tree>(student: Student<P>, optimizer: Optimizer, gradClip: number, endpointWeight = 0): TrainStep<P> {
  const velocity = (p: P, u: Array, t: Array, cond: Array, w: Array) => {
    const [F, logvar] = student(p, u, t, cond, w);
    logvar.dispose();
    return F;
  };
  return (params, state, batch, r, hyper) => {
    const { xt, t, dxdt, cond, w, keep, x0 } = batch;
    const u = xt.ref.div(SIGMA_D);
    const xtKept = xt.ref;
    // F⁻ and its exact JVP along the ODE, at the current parameters, without gradient.
    const [vu, vt] = jvpTangents(dxdt.ref, t.ref);
    const [fMinus, J] = jvp(
      (uu: Array, tt: Array) => velocity(tree.ref(params), uu, tt, cond.ref, w.ref),
      [u.ref, t.ref], [vu, vt],
    );
    const [g, tangentNorm] = normalizeTangent(consistencyTangent(fMinus.ref, J, xt, dxdt, t.ref, r));
    // the endpoint error at the current parameters (F⁻ is F's value), logged whatever the weight
    const endpointMse = np.mean(endpointError(fMinus.ref, xtKept.ref, t.ref, x0.ref).mul(keep.ref));
    const target = lax.stopGradient(fMinus.add(g));
    const lossOf = (p: P) => {
      const [F, logvar] = student(p, u.ref, t.ref, cond.ref, w.ref);
      const parts = scmLoss(endpointWeight > 0 ? F.ref : F, logvar, target.ref, t.ref, keep.ref);
      const loss = endpointWeight > 0
        ? parts.loss.add(np.mean(endpointError(F, xtKept.ref, t.ref, x0.ref).mul(keep.ref)).mul(endpointWeight))
        : parts.loss;
      return [loss, [parts.lossNoLogvar, parts.lossNoWeight]] as [Array, Array[]];
    };
    const [[loss, [lossNoLogvar, lossNoWeight]], grads] = valueAndGrad(lossOf, { hasAux: true })(tree.ref(params) as never);
    u.dispose(); t.dispose(); cond.dispose(); w.dispose(); keep.dispose(); target.dispose(); xtKept.dispose(); x0.dispose();

    const [paramLeaves, treedef] = tree.flatten(params as Tree);
    const next = guardedUpdate(optimizer, tree.flatten(grads as Tree)[0] as Array[], state, paramLeaves as Array[], loss.ref, hyper, gradClip);
    const nextParams = tree.unflatten(treedef, next.params) as P;
    const nextState = next.state;
    const gradNorm = next.gradNorm, ok = next.ok;
    const stats = np.stack([loss, lossNoLogvar, lossNoWeight, np.mean(tangentNorm), gradNorm, ok.astype(np.float32), endpointMse]);
    return [nextParams, nextState, stats];
  };
}
