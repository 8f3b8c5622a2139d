/**
 * An analytic teacher: per prompt, the data is a Gaussian mixture in R^d with equally weighted
 * isotropic components; its flow-matching velocity E[ε − z | x_s] is closed-form, so every
 * trajectory, endpoint and metric of a distillation on it can be checked exactly.
 * The empty prompt (a zero condition row) is the mixture of all prompts.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { type Key, normal, split, uniform } from "../numerics/random.ts";

export type GmmSpec = {
  /** Latent dimension d. */
  readonly dim: number;
  /** Prompt names, one mixture each. */
  readonly prompts: readonly string[];
  /** Components per prompt. */
  readonly components: number;
  /** Component standard deviation (in units of the scaled latent z). */
  readonly std: number;
  /** Component means, prompt-major: [P·K·d]. */
  readonly means: Float32Array;
};

/** Component means drawn from N(0, I) with `key`, as the benchmark mixture is (issue #2). */
export function drawMeans(k: Key, prompts: number, components: number, dim: number): Float32Array {
  return normal(k, prompts * components * dim);
}

/** Arrays of the teacher: means [J, d] and the prompt→component prior map [P, J] (J = P·K). */
export type GmmArrays = { means: Array; promptToComponents: Array };

export function gmmArrays(spec: GmmSpec): GmmArrays {
  const P = spec.prompts.length;
  const K = spec.components;
  const map = new Float32Array(P * P * K);
  for (let p = 0; p < P; p++) for (let k = 0; k < K; k++) map[p * P * K + p * K + k] = 1 / K;
  return {
    means: np.array(spec.means).reshape([P * K, spec.dim]),
    promptToComponents: np.array(map).reshape([P, P * K]),
  };
}

/**
 * Closed-form flow velocity `v(x_s, s) = E[ε − z | x_s]` for condition rows `cond` [B, P]
 * (one-hot prompt, or all-zero for the empty prompt). With `var = (1−s)²σ² + s²`, component
 * posteriors `π_j ∝ prior_j · N(x_s; (1−s)μ_j, var)`, `μ̄ = Σ π_j μ_j` and
 * `a = (s − (1−s)σ²)/var`: `v = a·x_s − (a(1−s) + 1)·μ̄`.
 */
export function gmmFlowVelocity(arrays: GmmArrays, std: number, cond: Array, xs: Array, s: Array): Array {
  const { means, promptToComponents } = arrays;
  const P = promptToComponents.shape[0];
  // The empty prompt spreads its weight over all prompts.
  const empty = np.subtract(1, np.sum(cond.ref, 1, { keepdims: true }));
  const promptWeights = cond.add(empty.div(P)); // [B, P]
  const prior = np.matmul(promptWeights, promptToComponents); // [B, J]
  const oneMinusS = np.subtract(1, s.ref); // [B, 1]
  const variance = np.square(oneMinusS.ref).mul(std * std).add(np.square(s.ref));
  const meanSq = np.sum(np.square(means.ref), 1).reshape([1, -1]); // [1, J]
  const quad = np.matmul(xs.ref, means.ref.transpose()).mul(oneMinusS.ref)
    .sub(meanSq.mul(np.square(oneMinusS.ref)).mul(0.5)); // −½‖x − (1−s)μ_j‖² + const(x)
  const logits = np.maximum(np.log(prior), -1e30).add(quad.div(variance.ref));
  const posterior = np.exp(logits.ref.sub(np.max(logits, 1, { keepdims: true })));
  const meanZ = np.matmul(posterior.ref, means).div(np.sum(posterior, 1, { keepdims: true })); // [B, d]
  const a = s.sub(oneMinusS.ref.mul(std * std)).div(variance);
  return xs.mul(a.ref).sub(meanZ.mul(a.mul(oneMinusS).add(1)));
}

/** Exact samples of prompt p's mixture (in z units), for the sCM baseline and for checks. */
export function sampleGmm(spec: GmmSpec, k: Key, prompt: number, n: number): Float32Array {
  const d = spec.dim;
  const [kNoise, kComponent] = split(k);
  const eps = normal(kNoise, n * d);
  const pick = uniform(kComponent, n);
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const comp = Math.floor(pick[i] * spec.components);
    const base = (prompt * spec.components + comp) * d;
    for (let j = 0; j < d; j++) out[i * d + j] = spec.means[base + j] + spec.std * eps[i * d + j];
  }
  return out;
}
