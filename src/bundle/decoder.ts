/**
 * A teacher bundle's VAE decoder (teacher.json `vae_decoder`): latent rows [n, d] → images in
 * [0, 1], RGB when the decoder gives 3 channels, else grey (the channel mean). With the ONNX
 * Runtime executor it runs as its own file; otherwise imported like the denoiser and run by the
 * executor. Used for the evaluation's sample grids and for `sampleImages`; training never loads it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { ConfigError, type Executor, executorParts } from "../config/schema.ts";
import { inference } from "../executor/inference.ts";
import { OnnxFile, type HostTensor } from "../executor/onnxRun.ts";
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
  const declared = decoder.outputs[out].shape;
  if (kind === "onnx" && decoder.inputs[0].dtype === "float32" && decoder.outputs[out].dtype === "float32") {
    // only ever run forward: the file itself in an ONNX Runtime session, no import needed
    const session = OnnxFile.open(join(b.dir, dec.file), { device });
    return imagesOf(b, declared, {
      rows: FILE_ROWS,
      run: async (z) => (await (await session).run({ [dec.input]: z }, [dec.output]))[0],
      dispose: async () => (await session).release(),
    });
  }
  const params = decoder.paramArrays();
  const program = inference(executor, params, (p, z) => {
    const outs = decoder.apply(p, [z]);
    outs.forEach((a, i) => i !== out && a.dispose());
    return outs[out];
  }, "bundle_vae_decoder");
  return imagesOf(b, declared, {
    rows: PROGRAM_ROWS,
    run: async (z) => (await program.run([z]))[0],
    dispose: async () => {
      await program.dispose();
      tree.dispose(params as never);
    },
  });
}

/** Rows per decoder call: the file in ONNX Runtime (a real VAE's activations at 512² are ~100 MB a row per tensor), or the importer's program. */
const FILE_ROWS = 8, PROGRAM_ROWS = 64;

/** A decoder as a function of scaled latents [k, ...latent_shape] (k ≤ `rows`) to its raw output [k, C, H, W]. */
type RawDecoder = { rows: number; run(z: HostTensor): Promise<HostTensor>; dispose(): Promise<void> };

/**
 * Latent rows → images in [0, 1], in calls of at most `rows` (the last one padded, so that a
 * compiled program serves every call): latents unscaled to the decoder's units, and its output
 * [C, H, W] kept in colour for C = 3, else shown grey (the channel mean).
 */
function imagesOf(b: LoadedBundle, declared: readonly (number | string | null)[], raw: RawDecoder): BundleDecoder {
  const m = b.manifest, [lo, hi] = m.vaeDecoder!.outputRange;
  return {
    async decode(latents, n, maxRows = raw.rows) {
      const rows = Math.max(1, Math.min(maxRows, raw.rows, n));
      let pixels: Float32Array | undefined, channels: 1 | 3 = 1, per = 0;
      for (let at = 0; at < n; at += rows) {
        const k = Math.min(rows, n - at);
        const z = new Float32Array(rows * b.dim);
        z.set(latents.subarray(at * b.dim, (at + k) * b.dim).map((v) => v / m.latentScalingFactor + m.latentShiftFactor));
        const img = await raw.run({ data: z, shape: [rows, ...m.latentShape] });
        const C = img.shape.length === 4 ? img.shape[1] : 1, plane = img.data.length / rows / C;
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
    dispose: () => raw.dispose(),
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
