/**
 * Transformer pieces over token arrays [B, N, H], as pure functions of parameter records:
 * multi-head attention (softmax, or Sana's ReLU linear attention) with QK-norm, cross-attention,
 * a gated (GLU) feed-forward, RMS norm. Used by the VAE, the text encoder, the DiT teacher and
 * the evaluator.
 */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import { type Linear, initLinear, linear } from "./layers.ts";

import type { AttentionKind } from "../config/defaults.ts";

export type { AttentionKind };

/** RMS norm over the last axis with a learned gain (QK-norm, Sana). */
export function rmsNorm(gain: Array, x: Array, eps = 1e-6): Array {
  const ms = np.mean(np.square(x.ref), -1, { keepdims: true });
  return x.div(np.sqrt(ms.add(eps))).mul(gain);
}

export type Attention = { q: Linear; k: Linear; v: Linear; out: Linear; qNorm: Array; kNorm: Array };

/** Queries from width `dim`, keys/values from width `contextDim`; output zero-initialised when `outScale` is 0. */
export function initAttention(k: Key, dim: number, contextDim: number, heads: number, outScale = 1): Attention {
  const dh = dim / heads;
  if (!Number.isInteger(dh)) throw new Error(`width ${dim} is not divisible by ${heads} heads`);
  return {
    q: initLinear(foldIn(k, 1), dim, dim), k: initLinear(foldIn(k, 2), contextDim, dim),
    v: initLinear(foldIn(k, 3), contextDim, dim), out: initLinear(foldIn(k, 4), dim, dim, outScale),
    qNorm: np.ones([dh]), kNorm: np.ones([dh]),
  };
}

/** [B, N, H] → [B, heads, N, H/heads]. */
function splitHeads(x: Array, heads: number): Array {
  const [B, N, H] = x.shape;
  return x.reshape([B, N, heads, H / heads]).transpose([0, 2, 1, 3]);
}

function mergeHeads(x: Array): Array {
  const [B, h, N, dh] = x.shape;
  return x.transpose([0, 2, 1, 3]).reshape([B, N, h * dh]);
}

/**
 * Multi-head attention of queries x [B, N, H] over context [B, M, C]. `keyBias` [B, 1, 1, M]
 * (0 to attend, a large negative number to mask) applies to softmax attention; linear
 * attention takes `keyMask` [B, 1, M, 1] (1 or 0) instead. QK-norm on both paths.
 */
export function attention(
  p: Attention, x: Array, context: Array, heads: number, kind: AttentionKind,
  mask?: { keyBias: Array; keyMask: Array },
): Array {
  const q = rmsNorm(p.qNorm, splitHeads(linear(p.q, x), heads));
  const k = rmsNorm(p.kNorm, splitHeads(linear(p.k, context.ref), heads));
  const v = splitHeads(linear(p.v, context), heads);
  const dh = q.shape[3];
  let y: Array;
  if (kind === "softmax") {
    let logits = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(dh));
    if (mask) {
      logits = logits.add(mask.keyBias);
      mask.keyMask.dispose();
    }
    y = np.matmul(nn.softmax(logits, -1), v);
  } else {
    // Sana's linear attention: φ = ReLU; y_i = φ(q_i)·Σ_j φ(k_j)v_jᵀ / (φ(q_i)·Σ_j φ(k_j) + ε).
    let kf = nn.relu(k);
    if (mask) {
      kf = kf.mul(mask.keyMask);
      mask.keyBias.dispose();
    }
    const qf = nn.relu(q);
    const kv = np.matmul(kf.ref.transpose([0, 1, 3, 2]), v); // [B, h, dh, dh]
    const ksum = np.sum(kf, 2, { keepdims: true }); // [B, h, 1, dh]
    const num = np.matmul(qf.ref, kv);
    const den = np.sum(qf.mul(ksum), -1, { keepdims: true }).add(1e-6);
    y = num.div(den);
  }
  return linear(p.out, mergeHeads(y));
}

/** Bias and mask for attention over context tokens from a mask [B, M] of 1 (token) and 0 (padding). */
export function contextMask(mask: Array): { keyBias: Array; keyMask: Array } {
  const [B, M] = mask.shape;
  return {
    keyBias: mask.ref.sub(1).mul(1e4).reshape([B, 1, 1, M]),
    keyMask: mask.reshape([B, 1, M, 1]),
  };
}

export type FeedForward = { gate: Linear; up: Linear; down: Linear };

/** GLU feed-forward (SwiGLU): down(silu(gate(x)) ⊙ up(x)). */
export function initFeedForward(k: Key, dim: number, hidden: number, outScale = 1): FeedForward {
  return {
    gate: initLinear(foldIn(k, 1), dim, hidden), up: initLinear(foldIn(k, 2), dim, hidden),
    down: initLinear(foldIn(k, 3), hidden, dim, outScale),
  };
}

export function feedForward(p: FeedForward, x: Array): Array {
  return linear(p.down, nn.silu(linear(p.gate, x.ref)).mul(linear(p.up, x)));
}

/** A pre-norm encoder block (self-attention + GLU feed-forward), for the VAE, text encoder and evaluator. */
export type EncoderBlock = { attn: Attention; ff: FeedForward; norm1: Array; norm2: Array };

export function initEncoderBlock(k: Key, dim: number, heads: number, ffHidden: number): EncoderBlock {
  return {
    attn: initAttention(foldIn(k, 1), dim, dim, heads), ff: initFeedForward(foldIn(k, 2), dim, ffHidden),
    norm1: np.ones([dim]), norm2: np.ones([dim]),
  };
}

export function encoderBlock(
  p: EncoderBlock, x: Array, heads: number, kind: AttentionKind, mask?: { keyBias: Array; keyMask: Array },
): Array {
  const y = rmsNorm(p.norm1, x.ref);
  x = x.add(attention(p.attn, y.ref, y, heads, kind, mask));
  return x.ref.add(feedForward(p.ff, rmsNorm(p.norm2, x)));
}

/** Fixed 2-D sine-cosine position embedding of a rows × cols grid, [rows·cols, dim] (MAE / DiT). */
export function gridPositions(rows: number, cols: number, dim: number): Array {
  const quarter = dim / 4;
  const out = new Float32Array(rows * cols * dim);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const row = (r * cols + c) * dim;
    for (let i = 0; i < quarter; i++) {
      const f = 1 / 10000 ** (i / quarter);
      out[row + i] = Math.sin(r * f); out[row + quarter + i] = Math.cos(r * f);
      out[row + 2 * quarter + i] = Math.sin(c * f); out[row + 3 * quarter + i] = Math.cos(c * f);
    }
  }
  return np.array(out).reshape([rows * cols, dim]);
}
