/**
 * The default teacher (and, with guidance and logvar heads, the student): a Sana-style DiT over
 * latent tokens. A flow-matching velocity model v(x_s, s, text) with
 * - patch embedding of the 7×7×C latent (one token per latent pixel) and fixed 2-D positions,
 * - adaLN-single time conditioning (PixArt-α / Sana): one shared projection of the time
 *   embedding to 6 modulation vectors, plus a learned table per block,
 * - self-attention (softmax, or Sana's ReLU linear attention) with QK-norm,
 * - cross-attention to the text tokens (masked), GLU feed-forward,
 * - a zero-initialised output layer (the untrained model predicts 0).
 * The student adds an embedding of 0.1·w to the time embedding (zero-initialised output, so a
 * teacher copy starts as the teacher) and a logvar head (spec §4).
 */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import {
  type Linear, type Embedder, initLinear, linear, layerNorm, initEmbedder, embed, TIME_FEATURES, timeFeatures, guidanceFeatures,
} from "./layers.ts";
import {
  type Attention, type AttentionKind, type FeedForward, initAttention, attention, initFeedForward, feedForward, contextMask, gridPositions,
} from "./transformer.ts";
import { splitCondition } from "./textEncoder.ts";

export type DitConfig = {
  /** Latent grid side (7) and channels (4): the flat latent has side²·channels values. */
  readonly side: number;
  readonly channels: number;
  readonly width: number;
  readonly depth: number;
  readonly heads: number;
  /** Width of the text tokens (the text encoder's width). */
  readonly textWidth: number;
  readonly attention: AttentionKind;
  readonly ffRatio: number;
};

type DitBlock = { table: Array; selfAttn: Attention; crossAttn: Attention; ff: FeedForward };

export type DitParams = {
  inProj: Linear;
  timeEmbed: Embedder;
  /** adaLN-single: time embedding → 6·width modulation shared by all blocks. */
  timeBlock: Linear;
  blocks: DitBlock[];
  finalTable: Array;
  outProj: Linear;
  /** Student only (spec §4). */
  guidanceEmbed?: Embedder;
  logvarHead?: Linear;
};

export function initDit(k: Key, c: DitConfig): DitParams {
  const H = c.width;
  return {
    inProj: initLinear(foldIn(k, 1), c.channels, H),
    timeEmbed: initEmbedder(foldIn(k, 2), TIME_FEATURES, H),
    timeBlock: initLinear(foldIn(k, 3), H, 6 * H, 0),
    blocks: globalThis.Array.from({ length: c.depth }, (_, i) => ({
      table: np.zeros([6, H]),
      selfAttn: initAttention(foldIn(k, 100 + 4 * i), H, H, c.heads),
      crossAttn: initAttention(foldIn(k, 101 + 4 * i), H, c.textWidth, c.heads, 0),
      ff: initFeedForward(foldIn(k, 102 + 4 * i), H, c.ffRatio * H),
    })),
    finalTable: np.zeros([2, H]),
    outProj: initLinear(foldIn(k, 4), H, c.channels, 0),
  };
}

/** Adds the student's heads to a teacher's parameters: guidance embedding (zero output) and logvar head (zero). */
export function withStudentHeads(k: Key, teacher: DitParams, c: DitConfig): DitParams {
  return { ...teacher, guidanceEmbed: initEmbedder(foldIn(k, 1), TIME_FEATURES, c.width, 0), logvarHead: initLinear(foldIn(k, 2), c.width, 1, 0) };
}

const modulate = (x: Array, shift: Array, scale: Array) => layerNorm(x).mul(scale.add(1)).add(shift);

/**
 * Flow velocity (and, for a student, logvar). xFlow [B, side²·C], s [B, 1] or [1, 1],
 * cond [B, L+1, D+1] (text tokens + mask), w [B, 1] (ignored by a teacher).
 * Returns `[v [B, side²·C], logvar [B, 1]]` (logvar 0 for a teacher). `o.timeEmbedding` is
 * given (a reference to) the time embedding [B, H] the blocks read.
 */
export function ditFlow(p: DitParams, c: DitConfig, xFlow: Array, s: Array, cond: Array, w?: Array, o: { timeEmbedding?: (temb: Array) => void } = {}): [Array, Array] {
  const B = xFlow.shape[0], H = c.width, N = c.side * c.side;
  let temb = embed(p.timeEmbed, timeFeatures(s));
  if (p.guidanceEmbed && w) temb = temb.add(embed(p.guidanceEmbed, guidanceFeatures(w)));
  else w?.dispose();
  if (temb.shape[0] !== B) temb = np.broadcastTo(temb, [B, H]);
  o.timeEmbedding?.(temb.ref); // the time embedding [B, H] every block reads (src/bundle/exportTeacher.ts names it)
  const logvar = p.logvarHead ? linear(p.logvarHead, temb.ref) : np.zeros([B, 1]);
  const t6 = linear(p.timeBlock, nn.silu(temb.ref)).reshape([B, 1, 6, H]);
  const [text, mask] = splitCondition(cond);
  const m = contextMask(mask);
  let x = linear(p.inProj, xFlow.reshape([B, N, c.channels])).add(gridPositions(c.side, c.side, H));
  for (const b of p.blocks) {
    const mods = np.split(t6.ref.add(b.table), 6, 2).map((a) => a.reshape([B, 1, H]));
    const [shiftA, scaleA, gateA, shiftF, scaleF, gateF] = mods;
    const y = modulate(x.ref, shiftA, scaleA);
    x = x.add(attention(b.selfAttn, y.ref, y, c.heads, c.attention).mul(gateA));
    x = x.add(attention(b.crossAttn, x.ref, text.ref, c.heads, "softmax", { keyBias: m.keyBias.ref, keyMask: m.keyMask.ref }));
    x = x.add(feedForward(b.ff, modulate(x.ref, shiftF, scaleF)).mul(gateF));
  }
  t6.dispose(); text.dispose(); m.keyBias.dispose(); m.keyMask.dispose();
  const [shift, scale] = np.split(p.finalTable.reshape([1, 2, H]).add(temb.reshape([B, 1, H])), 2, 1);
  const v = linear(p.outProj, modulate(x, shift, scale));
  return [v.reshape([B, N * c.channels]), logvar];
}
