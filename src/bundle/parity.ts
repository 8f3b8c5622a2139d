/**
 * The imported teacher against the teacher's own file: before a bundle run trains, onnxruntime
 * runs `transformer.onnx` as it is, and tbcm's program (the importer's jax-js function, lowered
 * as training runs it) the same inputs — noisy latents at a high and a low noise level, real
 * table conditions, the guidance input and constants as teacher.json says. A teacher tbcm computes
 * differently from its file (an op the importer gets wrong on a model nobody tested) would
 * otherwise be distilled without a word.
 */
import { OnnxFile, type HostTensor, type TypedHostTensor, type FeedType } from "../executor/onnxRun.ts";
import type { Device } from "../config/schema.ts";
import { foldIn, key, normal } from "../numerics/random.ts";
import type { LoadedBundle } from "./load.ts";

/** Flow times of the check: near pure noise, where the 1-step student starts, and at low noise. */
const CHECK_TIMES = [0.9, 0.3];
const FEED_TYPES: readonly string[] = ["float32", "float16", "int64", "int32", "bool"];

export type Parity = { readonly relativeError: number } | { readonly skipped: string };

/**
 * ‖v_tbcm − v_file‖ / ‖v_file‖ over CHECK_TIMES for the table rows `entries` (host condition rows
 * [n, ...table.shape] in `rows`): `velocity` is tbcm's flow velocity v(x_s, s, c) (its program);
 * the file's output is turned into v as teacher.json says (noise_at, prediction).
 */
export async function teacherParity(
  b: LoadedBundle, rows: HostTensor, guidance: number, device: Device,
  velocity: (x: HostTensor, s: HostTensor, c: HostTensor, w: HostTensor) => Promise<Float32Array>,
): Promise<Parity> {
  const m = b.manifest.transformer, n = rows.shape[0], d = b.dim;
  const spec = (name: string) => b.transformer.inputs.find((i) => i.name === name)!;
  const odd = b.transformer.inputs.find((i) => !FEED_TYPES.includes(i.dtype));
  if (odd) return { skipped: `input "${odd.name}" is ${odd.dtype}, which onnxruntime-node cannot be fed from JavaScript` };
  let file: OnnxFile;
  try {
    file = await OnnxFile.open(b.transformer.file, { device });
  } catch (e) {
    return { skipped: `onnxruntime cannot open the file (${String((e as Error).message).split("\n")[0].slice(0, 160)})` };
  }
  const typed = (name: string, data: Float32Array, shape: readonly number[]): TypedHostTensor => ({ data, shape, type: spec(name).dtype as FeedType });
  const perSample = (name: string, v: number) => typed(name, new Float32Array(n).fill(v), spec(name).shape.length === 1 ? [n] : [n, 1]);
  let num = 0, den = 0;
  try {
    for (const [k, s] of CHECK_TIMES.entries()) {
      const x = { data: normal(foldIn(key(11), k), n * d).map((e) => (1 - s) * 0.5 * Math.sin(e * 3) + s * e), shape: [n, d] };
      const feeds: Record<string, TypedHostTensor> = {
        [m.inputs.latent]: typed(m.inputs.latent, x.data, [n, ...b.manifest.latentShape]),
        [m.inputs.time]: perSample(m.inputs.time, m.timeScale * (m.noiseAt === 1 ? s : 1 - s)),
      };
      const size = rows.data.length / n;
      let at = 0;
      b.table.parts.forEach((part, j) => {
        const partSize = part.shape.reduce((a, c) => a * c, 1), data = new Float32Array(n * partSize);
        for (let r = 0; r < n; r++) data.set(rows.data.subarray(r * size + at, r * size + at + partSize), r * partSize);
        feeds[m.inputs.condition[j]] = typed(m.inputs.condition[j], data, [n, ...part.shape]);
        at += partSize;
      });
      if (m.inputs.guidance) feeds[m.inputs.guidance] = perSample(m.inputs.guidance, m.guidanceInputScale * guidance);
      for (const name of m.inputs.constant) {
        const value = b.table.constants.get(name)!, batched = spec(name).shape.length > 0 && typeof spec(name).shape[0] !== "number";
        const data = batched ? new Float32Array(n * value.data.length) : value.data;
        if (batched) for (let r = 0; r < n; r++) data.set(value.data, r * value.data.length);
        feeds[name] = typed(name, data, batched ? [n, ...value.shape] : value.shape);
      }
      let out: HostTensor;
      try {
        [out] = await file.run(feeds, [m.output]);
      } catch (e) {
        // a file onnxruntime cannot run at this batch (a fixed batch inside, an input onnxruntime reads otherwise)
        return { skipped: `onnxruntime could not run the file at batch ${n} (${String((e as Error).message).split("\n")[0].slice(0, 200)})` };
      }
      // the file's output as the flow velocity v
      const want = out.data.map((o, i) => (m.prediction === "x0" ? (x.data[i] - o) / s : m.noiseAt === 1 ? o : -o));
      const got = await velocity(x, { data: new Float32Array(n).fill(s), shape: [n, 1] }, rows, { data: new Float32Array(n).fill(guidance), shape: [n, 1] });
      for (let i = 0; i < want.length; i++) {
        num += (got[i] - want[i]) ** 2;
        den += want[i] ** 2;
      }
    }
  } finally {
    await file.release();
  }
  return { relativeError: Math.sqrt(num / Math.max(den, 1e-30)) };
}

/** Above this noise spread (below) a run warns that the manifest's conventions look wrong. */
export const NOISE_SPREAD_WARN = 0.6;

/**
 * Whether the teacher, as teacher.json describes it, looks like a flow-matching velocity: at pure
 * noise (s = 1) a flow velocity is v(ε) = ε − E[x0 | c], so x − v is the same for every noise (the
 * data mean under the prompt). The spread of x − v over `n` noises, relative to the noises' own
 * spread: ~0 for a trained model in the declared conventions (0.30 for the shipped teacher's
 * bundle), and large where time_scale, prediction or noise_at is wrong (1.57, 1.18 and 0.76 on the
 * same bundle with time_scale 1, prediction x0, noise_at 0; test/bundle/parity.test.ts). `velocityAtNoise` gives v(x, s = 1)
 * for x [n, d] under one prompt.
 */
export async function noiseSpread(n: number, d: number, velocityAtNoise: (x: HostTensor) => Promise<Float32Array>): Promise<number> {
  const x = normal(foldIn(key(12), 0), n * d);
  const v = await velocityAtNoise({ data: x, shape: [n, d] });
  let num = 0, den = 0;
  for (let j = 0; j < d; j++) {
    let mr = 0, mx = 0;
    for (let i = 0; i < n; i++) {
      mr += (x[i * d + j] - v[i * d + j]) / n;
      mx += x[i * d + j] / n;
    }
    for (let i = 0; i < n; i++) {
      num += (x[i * d + j] - v[i * d + j] - mr) ** 2;
      den += (x[i * d + j] - mx) ** 2;
    }
  }
  return Math.sqrt(num / den);
}
