/**
 * The student (and teacher-shaped) network for vector latents: an MLP with adaLN-zero time
 * conditioning (DiT style), a prompt embedding, a guidance embedding of 0.1·w with a
 * zero-initialised output (so a teacher copy starts as the teacher) and a logvar head on the
 * time+guidance embedding (spec §4). It is a flow-matching model in (x_s, s); `src/gmm/student.ts` makes
 * it a TrigFlow student (spec §2), as in Sana-Sprint.
 */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import {
  type Linear, type Embedder, initLinear, linear, layerNorm, initEmbedder, embed, TIME_FEATURES, timeFeatures, guidanceFeatures,
} from "./layers.ts";

export type MlpConfig = {
  /** Latent dimension d (input and output). */
  readonly dim: number;
  /** Condition width (number of prompts for one-hot conditions). */
  readonly condDim: number;
  /** Hidden width of the residual stream. */
  readonly hidden: number;
  /** Width of the time/condition embedding. */
  readonly embedDim: number;
  /** Number of residual blocks. */
  readonly depth: number;
  /** Hidden width of each block's MLP, as a multiple of `hidden`. */
  readonly mlpRatio: number;
};

type Block = { modulation: Linear; fc1: Linear; fc2: Linear };

export type MlpParams = {
  timeEmbed: Embedder;
  guidanceEmbed: Embedder;
  condEmbed: Linear;
  inProj: Linear;
  blocks: Block[];
  finalModulation: Linear;
  outProj: Linear;
  logvarHead: Linear;
};

export function initMlp(k: Key, cfg: MlpConfig): MlpParams {
  const sub = (i: number) => foldIn(k, i);
  const { hidden: H, embedDim: E } = cfg;
  return {
    timeEmbed: initEmbedder(sub(1), TIME_FEATURES, E),
    guidanceEmbed: initEmbedder(sub(3), TIME_FEATURES, E, 0), // zero output: starts as the teacher
    condEmbed: initLinear(sub(5), cfg.condDim, E),
    inProj: initLinear(sub(6), cfg.dim, H),
    blocks: globalThis.Array.from({ length: cfg.depth }, (_, i) => ({
      modulation: initLinear(sub(100 + 3 * i), E, 3 * H, 0), // adaLN-zero
      fc1: initLinear(sub(101 + 3 * i), H, cfg.mlpRatio * H),
      fc2: initLinear(sub(102 + 3 * i), cfg.mlpRatio * H, H),
    })),
    finalModulation: initLinear(sub(7), E, 2 * H, 0),
    outProj: initLinear(sub(8), H, cfg.dim),
    logvarHead: initLinear(sub(9), E, 1, 0),
  };
}

/**
 * Flow-matching velocity and logvar. xFlow [B, d], s [B, 1] (or [1, 1]), cond [B, C], w [B, 1]
 * the guidance scale. Returns `[v [B, d], logvar [B, 1]]`.
 */
export function mlpFlow(p: MlpParams, xFlow: Array, s: Array, cond: Array, w: Array): [Array, Array] {
  const timeGuidance = embed(p.timeEmbed, timeFeatures(s)).add(embed(p.guidanceEmbed, guidanceFeatures(w)));
  const logvar = linear(p.logvarHead, timeGuidance.ref);
  const c = nn.silu(timeGuidance.add(linear(p.condEmbed, cond))); // [B, E]
  let h = linear(p.inProj, xFlow); // [B, H]
  for (const block of p.blocks) {
    const [shift, scale, gate] = np.split(linear(block.modulation, c.ref), 3, 1);
    const y = layerNorm(h.ref).mul(scale.add(1)).add(shift);
    h = h.add(linear(block.fc2, nn.silu(linear(block.fc1, y))).mul(gate));
  }
  const [shift, scale] = np.split(linear(p.finalModulation, c), 2, 1);
  return [linear(p.outProj, layerNorm(h).mul(scale.add(1)).add(shift)), logvar];
}
