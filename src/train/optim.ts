/**
 * Optimisers as pure functions over flat lists of parameter leaves (optax's shape):
 * `init(params) → state`, `update(grads, state, params, hyper) → [params, state]`.
 * Step-dependent scalars (learning rate, bias corrections) are computed on the host by
 * `hyper(step)` and enter the compiled step as inputs, so one program serves every step.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { CAME_BETAS, CAME_EPS, CAME_CLIP_THRESHOLD } from "../config/defaults.ts";

export type AdamWConfig = {
  readonly kind: "adamw";
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
};

export type CameConfig = {
  readonly kind: "came";
  readonly lr: number;
  readonly betas: readonly [number, number, number];
  readonly eps: readonly [number, number];
  readonly weightDecay: number;
  readonly clipThreshold: number;
};

export type OptimizerConfig = AdamWConfig | CameConfig;

export const CAME_DEFAULTS: Omit<CameConfig, "lr"> = {
  kind: "came", betas: CAME_BETAS, eps: CAME_EPS, weightDecay: 0, clipThreshold: CAME_CLIP_THRESHOLD,
};

/** Per-leaf optimiser state, a record of arrays. */
export type LeafState = Record<string, Array>;

/** Host-side scalars of one step. */
export type Hyper = Record<string, number>;

export type Optimizer = {
  init(params: Array[]): LeafState[];
  hyper(step: number, lr: number): Hyper;
  update(grads: Array[], state: LeafState[], params: Array[], hyper: Record<string, Array>): [Array[], LeafState[]];
};

/** AdamW (Loshchilov & Hutter 2019) with bias correction and decoupled weight decay. */
export function adamw(cfg: AdamWConfig): Optimizer {
  const [b1, b2] = cfg.betas;
  return {
    init: (params) => params.map((p) => ({ mu: np.zerosLike(p.ref), nu: np.zerosLike(p.ref) })),
    // step counts from 0; the bias corrections use the 1-based count.
    hyper: (step, lr) => ({ lr, bc1: 1 - b1 ** (step + 1), bc2: 1 - b2 ** (step + 1) }),
    update(grads, state, params, h) {
      const next = grads.map((g, i) => {
        const mu = state[i].mu.mul(b1).add(g.ref.mul(1 - b1));
        const nu = state[i].nu.mul(b2).add(np.square(g).mul(1 - b2));
        const step = mu.ref.div(h.bc1.ref).div(np.sqrt(nu.ref.div(h.bc2.ref)).add(cfg.eps));
        const p = params[i];
        const decayed = cfg.weightDecay > 0 ? p.ref.sub(p.mul(h.lr.ref).mul(cfg.weightDecay)) : p;
        return { p: decayed.sub(step.mul(h.lr.ref)), s: { mu, nu } };
      });
      disposeHyper(h);
      return [next.map((n) => n.p), next.map((n) => n.s)];
    },
  };
}

function rms(x: Array): Array {
  return np.sqrt(np.mean(np.square(x)));
}

/** CAME's factored inverse root: `rsqrt(row/mean(row))[:, None] · rsqrt(col)[None, :]`. */
function factoredRsqrt(row: Array, col: Array): Array {
  const rowFactor = np.sqrt(row.ref.div(np.mean(row, -1, { keepdims: true }))).reshape([-1, 1]);
  return np.reciprocal(rowFactor.mul(np.sqrt(col).reshape([1, -1])));
}

/**
 * CAME (Luo et al., ACL 2023): Adafactor-style factored second moments for matrices, an RMS clip
 * of the update, momentum, and the confidence-guided rescaling by the factored instability
 * `(u − m)²`. No bias correction, as in the reference implementation.
 */
export function came(cfg: CameConfig): Optimizer {
  const [b1, b2, b3] = cfg.betas;
  const [eps1, eps2] = cfg.eps;
  return {
    init: (params) => params.map((p): LeafState => {
      const m = np.zerosLike(p.ref);
      if (p.ndim < 2) return { m, v: np.zerosLike(p.ref) };
      const [rows, cols] = p.shape;
      return { m, r: np.zeros([rows]), c: np.zeros([cols]), rr: np.zeros([rows]), rc: np.zeros([cols]) };
    }),
    hyper: (_step, lr) => ({ lr }),
    update(grads, state, params, h) {
      const next = grads.map((g, i) => {
        const s = state[i];
        const factored = g.ndim >= 2;
        const sq = np.square(g.ref).add(eps1);
        const out: LeafState = {};
        let u: Array;
        if (factored) {
          out.r = s.r.mul(b2).add(np.mean(sq.ref, -1).mul(1 - b2));
          out.c = s.c.mul(b2).add(np.mean(sq, -2).mul(1 - b2));
          u = factoredRsqrt(out.r.ref, out.c.ref).mul(g);
        } else {
          out.v = s.v.mul(b2).add(sq.mul(1 - b2));
          u = g.div(np.sqrt(out.v.ref));
        }
        u = u.ref.div(np.maximum(rms(u).div(cfg.clipThreshold), 1));
        out.m = s.m.mul(b1).add(u.ref.mul(1 - b1));
        let update: Array;
        if (factored) {
          const instability = np.square(u.sub(out.m.ref)).add(eps2);
          out.rr = s.rr.mul(b3).add(np.mean(instability.ref, -1).mul(1 - b3));
          out.rc = s.rc.mul(b3).add(np.mean(instability, -2).mul(1 - b3));
          update = factoredRsqrt(out.rr.ref, out.rc.ref).mul(out.m.ref);
        } else {
          u.dispose();
          update = out.m.ref;
        }
        const p = params[i];
        const decayed = cfg.weightDecay > 0 ? p.ref.sub(p.mul(h.lr.ref).mul(cfg.weightDecay)) : p;
        return { p: decayed.sub(update.mul(h.lr.ref)), s: out };
      });
      disposeHyper(h);
      return [next.map((n) => n.p), next.map((n) => n.s)];
    },
  };
}

function disposeHyper(h: Record<string, Array>): void {
  for (const a of Object.values(h)) a.dispose();
}

export function makeOptimizer(cfg: OptimizerConfig): Optimizer {
  return cfg.kind === "adamw" ? adamw(cfg) : came(cfg);
}

/** Global L2 norm of a list of gradients (does not consume them). */
export function globalNorm(grads: Array[]): Array {
  return np.sqrt(grads.map((g) => np.sum(np.square(g.ref))).reduce((a, b) => a.add(b)));
}

/** Scales gradients so that their global norm is at most `maxNorm`; consumes `norm`. */
export function clipByGlobalNorm(grads: Array[], norm: Array, maxNorm: number): Array[] {
  const scale = np.minimum(np.divide(maxNorm, norm.add(1e-6)), 1);
  const clipped = grads.map((g) => g.mul(scale.ref));
  scale.dispose();
  return clipped;
}

/**
 * One guarded update (spec §4): global-norm clip of `grads`, the optimiser step, and — where the
 * loss or the gradient norm is not finite — the old parameters and state kept instead. Consumes
 * `grads`, `state`, `params` and `loss`'s reference it is given; returns the next leaves and state,
 * the gradient norm and `ok` (true when the update was applied).
 */
export function guardedUpdate(
  optimizer: Optimizer, grads: Array[], state: LeafState[], params: Array[], loss: Array, hyper: Record<string, Array>, maxNorm: number,
): { params: Array[]; state: LeafState[]; gradNorm: Array; ok: Array } {
  const gradNorm = globalNorm(grads);
  const clipped = clipByGlobalNorm(grads, gradNorm.ref, maxNorm);
  const oldState = state.map((s) => Object.fromEntries(Object.entries(s).map(([k, a]) => [k, a.ref])));
  const [next, nextState] = optimizer.update(clipped, state, params.map((p) => p.ref), hyper);
  const ok = np.logicalAnd(np.isfinite(gradNorm.ref), np.isfinite(loss));
  const pick = (a: Array, b: Array) => np.where(ok.ref, a, b);
  return {
    params: next.map((a, i) => pick(a, params[i])),
    state: nextState.map((st, i) => Object.fromEntries(Object.entries(st).map(([k, a]) => [k, pick(a, oldState[i][k])]))),
    gradNorm,
    ok,
  };
}
