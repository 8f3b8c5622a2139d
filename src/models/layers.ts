/** Small pure layers over parameter records: `{ init(key, …) → params }` and `apply(params, x)`. */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn, normal } from "../numerics/random.ts";
import { GUIDANCE_EMBED_SCALE } from "../config/defaults.ts";

export type Linear = { w: Array; b: Array };

/** `y = x·W + b`, W [in, out] initialised N(0, scale²/in) (scale 0: zero-initialised). */
export function initLinear(k: Key, inDim: number, outDim: number, scale = 1): Linear {
  const w = normal(k, inDim * outDim).map((v) => (v * scale) / Math.sqrt(inDim));
  return { w: np.array(w).reshape([inDim, outDim]), b: np.zeros([outDim]) };
}

export function linear(p: Linear, x: Array): Array {
  return np.matmul(x, p.w).add(p.b);
}

/** Layer norm without affine parameters over the last axis. */
export function layerNorm(x: Array, eps = 1e-6): Array {
  const centred = x.ref.sub(np.mean(x, -1, { keepdims: true }));
  const variance = np.mean(np.square(centred.ref), -1, { keepdims: true });
  return centred.div(np.sqrt(variance.add(eps)));
}

/** Sinusoidal features of a scalar per row: x [B, 1] → [B, 2·half], periods up to `maxPeriod`. */
export function sinusoidalEmbedding(x: Array, half: number, maxPeriod = 10000): Array {
  const freqs = new Float32Array(half).map((_, i) => Math.exp((-Math.log(maxPeriod) * i) / half));
  const angles = x.mul(np.array(freqs).reshape([1, half]));
  return np.concatenate([np.cos(angles.ref), np.sin(angles)], 1);
}

/** Two-layer embedder `Linear → SiLU → Linear` (DiT's TimestepEmbedder shape). */
export type Embedder = { fc1: Linear; fc2: Linear };

export function initEmbedder(k: Key, inDim: number, dim: number, outScale = 1): Embedder {
  return { fc1: initLinear(foldIn(k, 1), inDim, dim), fc2: initLinear(foldIn(k, 2), dim, dim, outScale) };
}

export function embed(p: Embedder, x: Array): Array {
  return linear(p.fc2, nn.silu(linear(p.fc1, x)));
}

/** Frequencies of the sinusoidal time and guidance features (half their width). */
const FEATURE_HALF = 32;
export const TIME_FEATURES = 2 * FEATURE_HALF;
/**
 * Flow time s ∈ [0, 1] enters the features as 100·s with periods up to 100: angular frequencies
 * from 100 down to 1 per unit s. Sana's 1000·s with periods up to 10⁴ reaches 1000, and the
 * sCM tangent contains dF/dt, which such high frequencies blow up (sCM, Lu & Song 2024, §4
 * on time embeddings); measured here, training diverged with it.
 */
const TIME_INPUT_SCALE = 100;
const MAX_PERIOD = 100;

/** Features of the flow time s [B, 1] → [B, TIME_FEATURES]. */
export function timeFeatures(s: Array): Array {
  return sinusoidalEmbedding(s.mul(TIME_INPUT_SCALE), FEATURE_HALF, MAX_PERIOD);
}

/** Features of the guidance scale w [B, 1], embedded as 0.1·w (spec §4) on the time features' scale. */
export function guidanceFeatures(w: Array): Array {
  return sinusoidalEmbedding(w.mul(GUIDANCE_EMBED_SCALE * TIME_INPUT_SCALE), FEATURE_HALF, MAX_PERIOD);
}
