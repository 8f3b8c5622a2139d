/**
 * The default VAE: a patch-token transformer autoencoder for 28×28×1 images. 4×4 patches → 49
 * tokens → latent 7×7×C (C = 4), KL-regularised. Latents are flat [B, 49·C] (token-major), the
 * layout the rest of the pipeline uses; `scale` (stored with the weights) makes them ≈ unit
 * variance. No convolutions: matmul-shaped models are what jax-js and ONNX Runtime run fast.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import { type Linear, initLinear, linear } from "./layers.ts";
import { type EncoderBlock, initEncoderBlock, encoderBlock, rmsNorm, gridPositions } from "./transformer.ts";

export type VaeConfig = {
  readonly imageSize: number; // 28
  readonly patch: number; // 4
  readonly latentChannels: number; // 4
  readonly width: number;
  readonly heads: number;
  readonly encoderDepth: number;
  readonly decoderDepth: number;
};

type Coder = { inProj: Linear; blocks: EncoderBlock[]; norm: Array; outProj: Linear };
export type VaeParams = { encoder: Coder; decoder: Coder };

export const tokensPerSide = (c: VaeConfig) => c.imageSize / c.patch;
export const latentDim = (c: VaeConfig) => tokensPerSide(c) ** 2 * c.latentChannels;

function initCoder(k: Key, c: VaeConfig, inDim: number, outDim: number, depth: number): Coder {
  return {
    inProj: initLinear(foldIn(k, 1), inDim, c.width),
    blocks: globalThis.Array.from({ length: depth }, (_, i) => initEncoderBlock(foldIn(k, 10 + i), c.width, c.heads, 2 * c.width)),
    norm: np.ones([c.width]),
    outProj: initLinear(foldIn(k, 2), c.width, outDim, 0.1),
  };
}

export function initVae(k: Key, c: VaeConfig): VaeParams {
  if (c.imageSize % c.patch !== 0) throw new Error(`image size ${c.imageSize} is not a multiple of patch ${c.patch}`);
  const pixels = c.patch * c.patch;
  return {
    encoder: initCoder(foldIn(k, 1), c, pixels, 2 * c.latentChannels, c.encoderDepth),
    decoder: initCoder(foldIn(k, 2), c, c.latentChannels, pixels, c.decoderDepth),
  };
}

function runCoder(p: Coder, c: VaeConfig, tokens: Array): Array {
  const n = tokensPerSide(c);
  let h = linear(p.inProj, tokens).add(gridPositions(n, n, c.width));
  for (const b of p.blocks) h = encoderBlock(b, h, c.heads, "softmax");
  return linear(p.outProj, rmsNorm(p.norm, h));
}

/** Images [B, S·S] → patch tokens [B, n², p²] (row-major patches, row-major pixels inside). */
export function patchify(images: Array, c: VaeConfig): Array {
  const B = images.shape[0], n = tokensPerSide(c), p = c.patch;
  return images.reshape([B, n, p, n, p]).transpose([0, 1, 3, 2, 4]).reshape([B, n * n, p * p]);
}

export function unpatchify(tokens: Array, c: VaeConfig): Array {
  const B = tokens.shape[0], n = tokensPerSide(c), p = c.patch;
  return tokens.reshape([B, n, n, p, p]).transpose([0, 1, 3, 2, 4]).reshape([B, c.imageSize * c.imageSize]);
}

/** Images [B, S·S] in [0, 1] → posterior mean and log-variance, each [B, latentDim] (unscaled). */
export function vaeEncode(p: VaeParams, c: VaeConfig, images: Array): [Array, Array] {
  const B = images.shape[0];
  const out = runCoder(p.encoder, c, patchify(images.mul(2).sub(1), c)); // [B, n², 2C]
  const [mean, logvar] = np.split(out, 2, 2);
  return [mean.reshape([B, latentDim(c)]), np.clip(logvar, -20, 10).reshape([B, latentDim(c)])];
}

/** Latents [B, latentDim] (unscaled) → images [B, S·S], ≈ [0, 1]. */
export function vaeDecode(p: VaeParams, c: VaeConfig, z: Array): Array {
  const B = z.shape[0];
  const n = tokensPerSide(c);
  return unpatchify(runCoder(p.decoder, c, z.reshape([B, n * n, c.latentChannels])), c).add(0.5);
}
