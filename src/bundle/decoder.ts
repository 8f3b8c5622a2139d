/**
 * A teacher bundle's VAE decoder (teacher.json `vae_decoder`), imported like the denoiser and run
 * by the run's executor: latent rows [n, d] → images in [0, 1], RGB when the decoder gives 3
 * channels, else grey (the channel mean). Used for the evaluation's sample grids and for
 * `sampleImages`; training never loads it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree } from "@jax-js/jax";
import { ConfigError, type Executor, executorParts } from "../config/schema.ts";
import { inference, inChunks } from "../executor/inference.ts";
import { OnnxFile } from "../executor/onnxRun.ts";
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
  const { kind, device } = executorParts(executor);
  const decoder = importOnnx(join(b.dir, dec.file), { target: kind });
  const inputs = decoder.inputs.map((i) => i.name), outputs = decoder.outputs.map((o) => o.name);
  if (inputs.length !== 1 || inputs[0] !== dec.input) throw new ConfigError(`teacher.json key "vae_decoder.input": the decoder's inputs are ${inputs.join(", ")}; it must take one input, "${dec.input}"`);
  const out = outputs.indexOf(dec.output);
  if (out < 0) throw new ConfigError(`teacher.json key "vae_decoder.output": the decoder has no output "${dec.output}" (its outputs: ${outputs.join(", ")})`);
  const [lo, hi] = dec.outputRange;
  if (kind === "onnx" && decoder.inputs[0].dtype === "float32" && decoder.outputs[out].dtype === "float32") {
    return fileDecoder(join(b.dir, dec.file), b, decoder.outputs[out].shape, device);
  }
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

/** Rows per call of a decoder run as its own file: a real VAE's activations at 512² are ~100 MB a row per tensor. */
const FILE_ROWS = 8;

/**
 * The ONNX Runtime executor's decoder: the file itself in an ONNX Runtime session (it is never
 * differentiated, so nothing needs the importer), scaling and the image range applied here.
 */
function fileDecoder(file: string, b: LoadedBundle, declared: readonly (number | string | null)[], device: ReturnType<typeof executorParts>["device"]): BundleDecoder {
  const m = b.manifest, dec = m.vaeDecoder!, [lo, hi] = dec.outputRange;
  const session = OnnxFile.open(file, { device });
  return {
    async decode(latents, n, maxRows = FILE_ROWS) {
      const f = await session, rows = Math.max(1, Math.min(maxRows, FILE_ROWS));
      let pixels: Float32Array | undefined, channels: 1 | 3 = 1, per = 0;
      for (let at = 0; at < n; at += rows) {
        const k = Math.min(rows, n - at);
        const z = latents.slice(at * b.dim, (at + k) * b.dim).map((v) => v / m.latentScalingFactor + m.latentShiftFactor);
        const [img] = await f.run({ [dec.input]: { data: z, shape: [k, ...m.latentShape] } }, [dec.output]);
        // [k, C, H, W] → [k, C·H·W] in [0, 1]: RGB kept, any other channel count shown grey (the channel mean)
        const C = img.shape.length === 4 ? img.shape[1] : 1, plane = img.data.length / k / C;
        channels = C === 3 ? 3 : 1;
        per = channels * plane;
        pixels ??= new Float32Array(n * per);
        for (let i = 0; i < k; i++) {
          for (let p = 0; p < per; p++) {
            let v: number;
            if (channels === 3) v = img.data[i * per + p];
            else {
              v = 0;
              for (let c = 0; c < C; c++) v += img.data[(i * C + c) * plane + p];
              v /= C;
            }
            pixels[(at + i) * per + p] = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
          }
        }
      }
      const [height, width] = decodedShape(declared, per / channels);
      return { pixels: pixels ?? new Float32Array(0), height, width, channels };
    },
    async dispose() {
      await (await session).release();
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
