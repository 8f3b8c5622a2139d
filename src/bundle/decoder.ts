/**
 * A teacher bundle's VAE decoder (teacher.json `vae_decoder`), imported like the denoiser and run
 * by the run's executor: latent rows [n, d] → images in [0, 1], RGB when the decoder gives 3
 * channels, else grey (the channel mean). Used for the evaluation's sample grids and for
 * `sampleImages`; training never loads it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree } from "@jax-js/jax";
import { ConfigError, type Executor } from "../config/schema.ts";
import { inference, inChunks } from "../executor/inference.ts";
import { importOnnx } from "../onnx/graph.ts";
import type { LoadedBundle } from "./load.ts";

export type DecodedImages = { pixels: Float32Array; height: number; width: number; channels: 1 | 3 };

export type BundleDecoder = {
  /** Decodes `n` latent rows (flat, [n·d]), at most `maxRows` per call. */
  decode(latents: Float32Array, n: number, maxRows?: number): Promise<DecodedImages>;
  dispose(): Promise<void>;
};

/** Whether teacher.json names a decoder whose file is in the bundle. */
export function hasDecoder(b: LoadedBundle): boolean {
  const dec = b.manifest.vaeDecoder;
  return dec !== null && existsSync(join(b.dir, dec.file));
}

/** Loads the bundle's decoder (check `hasDecoder` first); a mismatch with teacher.json is a one-line error. */
export function loadBundleDecoder(b: LoadedBundle, executor: Executor): BundleDecoder {
  const m = b.manifest, dec = m.vaeDecoder!;
  const decoder = importOnnx(join(b.dir, dec.file));
  const inputs = decoder.inputs.map((i) => i.name), outputs = decoder.outputs.map((o) => o.name);
  if (inputs.length !== 1 || inputs[0] !== dec.input) throw new ConfigError(`teacher.json key "vae_decoder.input": the decoder's inputs are ${inputs.join(", ")}; it must take one input, "${dec.input}"`);
  const out = outputs.indexOf(dec.output);
  if (out < 0) throw new ConfigError(`teacher.json key "vae_decoder.output": the decoder has no output "${dec.output}" (its outputs: ${outputs.join(", ")})`);
  const [lo, hi] = dec.outputRange;
  const params = decoder.paramArrays();
  let channels: 1 | 3 = 1; // known once the program is traced
  const program = inference(executor, params, (p, z) => {
    const B = z.shape[0];
    const outs = decoder.apply(p, [z.reshape([B, ...m.latentShape]).div(m.latentScalingFactor).add(m.latentShiftFactor)]);
    let img = outs[out];
    outs.forEach((a, i) => i !== out && a.dispose());
    // [B, C, H, W] → [B, C·H·W] in [0, 1]: RGB kept, any other channel count shown grey (the channel mean)
    if (img.shape.length === 4 && img.shape[1] === 3) channels = 3;
    else img = np.mean(img, 1);
    return np.clip(img.sub(lo).div(hi - lo), 0, 1).reshape([B, -1]);
  }, "bundle_vae_decoder");
  return {
    async decode(latents, n, maxRows = 64) {
      const [px] = await inChunks(program, [{ data: latents, shape: [n, b.dim] }], n, Math.min(n, maxRows));
      const [height, width] = decodedShape(decoder.outputs[out].shape, px.shape[1] / channels);
      return { pixels: px.data, height, width, channels };
    },
    async dispose() {
      await program.dispose();
      tree.dispose(params as never);
    },
  };
}

/** Height and width of decoded images of `pixels` values each, from the decoder output's declared [B, C, H, W] (square if unknown). */
function decodedShape(shape: readonly (number | string | null)[], pixels: number): [number, number] {
  const h = shape[2], w = shape[3];
  if (typeof h === "number" && typeof w === "number" && h * w === pixels) return [h, w];
  const side = Math.round(Math.sqrt(pixels));
  if (side * side !== pixels) throw new ConfigError(`the decoder's output (${pixels} pixels per image) is neither [B, C, H, W] with known H, W nor square`);
  return [side, side];
}
