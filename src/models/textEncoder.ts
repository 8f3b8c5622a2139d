/**
 * The default text encoder: word tokens (one-hot rows, so that no gather is needed) → a learned
 * start token + word embeddings + learned positions → a small transformer with a key mask →
 * token embeddings [B, L+1, D] and a mask [B, L+1]. The start token is always present, so the
 * empty prompt "" has one token and its output is the unconditional embedding.
 * Trained jointly with the teacher, frozen afterwards.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { type Key, foldIn, normal } from "../numerics/random.ts";
import { type EncoderBlock, initEncoderBlock, encoderBlock, rmsNorm, contextMask } from "./transformer.ts";
import { type Tokenizer, encode, PAD } from "../data/tokenizer.ts";

export type TextEncoderConfig = {
  readonly vocab: number;
  /** Words per prompt (the sequence has one more: the start token). */
  readonly maxWords: number;
  readonly width: number;
  readonly heads: number;
  readonly depth: number;
};

export type TextEncoderParams = { start: Array; words: Array; positions: Array; blocks: EncoderBlock[]; norm: Array };

export function initTextEncoder(k: Key, c: TextEncoderConfig): TextEncoderParams {
  const table = (i: number, n: number) => np.array(normal(foldIn(k, i), n * c.width).map((v) => v * 0.5)).reshape([n, c.width]);
  return {
    start: table(1, 1),
    words: table(2, c.vocab),
    positions: table(3, c.maxWords + 1),
    blocks: globalThis.Array.from({ length: c.depth }, (_, i) => initEncoderBlock(foldIn(k, 10 + i), c.width, c.heads, 2 * c.width)),
    norm: np.ones([c.width]),
  };
}

/** Host inputs of a batch of prompts: one-hot word rows [B·L·V] and the mask [B·(L+1)] (start token first). */
export function tokenRows(tok: Tokenizer, prompts: readonly string[], c: TextEncoderConfig): { oneHot: Float32Array; mask: Float32Array } {
  const L = c.maxWords, V = c.vocab;
  const oneHot = new Float32Array(prompts.length * L * V);
  const mask = new Float32Array(prompts.length * (L + 1));
  prompts.forEach((p, b) => {
    const ids = encode(tok, p, L);
    mask[b * (L + 1)] = 1;
    ids.forEach((id, j) => {
      if (id === PAD) return;
      if (id >= V) throw new Error(`token id ${id} is outside the text encoder's vocabulary of ${V}`);
      oneHot[(b * L + j) * V + id] = 1;
      mask[b * (L + 1) + 1 + j] = 1;
    });
  });
  return { oneHot, mask };
}

/**
 * One-hot words [B, L, V] and mask [B, L+1] → the condition the teacher takes: token embeddings
 * with the mask as one more channel, [B, L+1, D+1].
 */
export function encodeText(p: TextEncoderParams, c: TextEncoderConfig, oneHot: Array, mask: Array): Array {
  const B = oneHot.shape[0];
  const words = np.matmul(oneHot, p.words); // [B, L, D]
  const start = np.broadcastTo(p.start.reshape([1, 1, c.width]), [B, 1, c.width]);
  let h = np.concatenate([start, words], 1).add(p.positions);
  const m = contextMask(mask.ref);
  for (const b of p.blocks) h = encoderBlock(b, h, c.heads, "softmax", { keyBias: m.keyBias.ref, keyMask: m.keyMask.ref });
  m.keyBias.dispose(); m.keyMask.dispose();
  h = rmsNorm(p.norm, h).mul(mask.ref.reshape([B, c.maxWords + 1, 1]));
  return np.concatenate([h, mask.reshape([B, c.maxWords + 1, 1])], 2);
}

/** Splits a condition [B, L+1, D+1] into token embeddings [B, L+1, D] and mask [B, L+1]. */
export function splitCondition(cond: Array): [Array, Array] {
  const [B, M, D1] = cond.shape;
  const [emb, mask] = np.split(cond, [D1 - 1], 2);
  return [emb, mask.reshape([B, M])];
}
