/**
 * The checks of a bundle's teacher before a run trains (`checkTeacher`), which `tbcm check-bundle`
 * also runs: one guided step on every prompt is finite; the imported teacher computes what the
 * teacher's own file computes in onnxruntime (`teacherParity`: noisy latents at a high and a low
 * noise level, real table conditions, the guidance and constant inputs as teacher.json says); and
 * its velocity at pure noise looks like a flow velocity in the declared conventions
 * (`noiseSpread`). A teacher tbcm computes differently from its file (an op the importer gets wrong
 * on a model nobody tested), or one described with the wrong time scale, would otherwise be
 * distilled without a word.
 */
import { OnnxFile, type HostTensor, type TypedHostTensor, type FeedType } from "../executor/onnxRun.ts";
import { type Inference, inChunks } from "../executor/inference.ts";
import { type BundleConfig, type Device, ConfigError } from "../config/schema.ts";
import { foldIn, key, normal } from "../numerics/random.ts";
import { type LoadedBundle, BUNDLE_ROWS } from "./load.ts";

/** Flow times of the check: near pure noise, where the 1-step student starts, and at low noise. */
const CHECK_TIMES = [0.9, 0.3];
const FEED_TYPES: readonly string[] = ["float32", "float16", "int64", "int32", "bool"];

export type Parity = { readonly relativeError: number } | { readonly skipped: string };

/**
 * The feeds of a file in the teacher's contract (the teacher's, or its student's export) for n
 * samples: latents x [n, d] at flow times s [n], condition rows [n, ...table.shape] split into the
 * condition inputs, the guidance input at `guidance` and the constant inputs from the table, each
 * in the element type and time convention teacher.json declares.
 */
export function teacherFeeds(b: LoadedBundle, x: Float32Array, s: Float32Array, rows: HostTensor, guidance: number): Record<string, TypedHostTensor> {
  const m = b.manifest.transformer, n = s.length;
  const spec = (name: string) => b.transformer.inputs.find((i) => i.name === name)!;
  const typed = (name: string, data: Float32Array, shape: readonly number[]): TypedHostTensor => ({ data, shape, type: spec(name).dtype as FeedType });
  const perSample = (name: string, data: Float32Array) => typed(name, data, spec(name).shape.length === 1 ? [n] : [n, 1]);
  const feeds: Record<string, TypedHostTensor> = {
    [m.inputs.latent]: typed(m.inputs.latent, x, [n, ...b.manifest.latentShape]),
    [m.inputs.time]: perSample(m.inputs.time, s.map((v) => m.timeScale * (m.noiseAt === 1 ? v : 1 - v))),
  };
  const size = rows.data.length / n;
  let at = 0;
  b.table.parts.forEach((part, j) => {
    const partSize = part.shape.reduce((a, c) => a * c, 1), data = new Float32Array(n * partSize);
    for (let r = 0; r < n; r++) data.set(rows.data.subarray(r * size + at, r * size + at + partSize), r * partSize);
    feeds[m.inputs.condition[j]] = typed(m.inputs.condition[j], data, [n, ...part.shape]);
    at += partSize;
  });
  if (m.inputs.guidance) feeds[m.inputs.guidance] = perSample(m.inputs.guidance, new Float32Array(n).fill(m.guidanceInputScale * guidance));
  for (const name of m.inputs.constant) {
    const value = b.table.constants.get(name)!, batched = spec(name).shape.length > 0 && typeof spec(name).shape[0] !== "number";
    const data = batched ? new Float32Array(n * value.data.length) : value.data;
    if (batched) for (let r = 0; r < n; r++) data.set(value.data, r * value.data.length);
    feeds[name] = typed(name, data, batched ? [n, ...value.shape] : value.shape);
  }
  return feeds;
}

/**
 * ‖v_tbcm − v_file‖ / ‖v_file‖ over CHECK_TIMES for n prompts (their condition rows [n,
 * ...table.shape] in `rows`) and one latent each: `velocity` is tbcm's flow velocity v(x_s, s, c, w)
 * (its program); the file's output is turned into v as teacher.json says (noise_at, prediction).
 */
export async function teacherParity(
  b: LoadedBundle, rows: HostTensor, guidance: number, device: Device,
  velocity: (x: HostTensor, s: HostTensor, c: HostTensor, w: HostTensor) => Promise<Float32Array>,
): Promise<Parity> {
  const m = b.manifest.transformer, n = rows.shape[0], d = b.dim;
  const odd = b.transformer.inputs.find((i) => !FEED_TYPES.includes(i.dtype));
  if (odd) return { skipped: `input "${odd.name}" is ${odd.dtype}, which onnxruntime-node cannot be fed from JavaScript` };
  let file: OnnxFile;
  try {
    file = await OnnxFile.open(b.transformer.file, { device });
  } catch (e) {
    return { skipped: `onnxruntime cannot open the file (${String((e as Error).message).split("\n")[0].slice(0, 160)})` };
  }
  let num = 0, den = 0;
  try {
    for (const [k, s] of CHECK_TIMES.entries()) {
      const x = { data: normal(foldIn(key(11), k), n * d).map((e) => (1 - s) * 0.5 * Math.sin(e * 3) + s * e), shape: [n, d] };
      const feeds = teacherFeeds(b, x.data, new Float32Array(n).fill(s), rows, guidance);
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

/**
 * One guided Euler step of the teacher from noise for every prompt (and the empty one): a
 * condition the network cannot take (a class label past its embedding, a mask of the wrong
 * kind) shows as a non-finite velocity, named here by its prompt before any training step.
 */
async function checkTeacherFinite(euler: Inference, prompts: readonly string[], conditions: (idx: readonly number[]) => HostTensor, d: number, w: number): Promise<void> {
  const n = prompts.length, idx = globalThis.Array.from({ length: n }, (_, i) => i);
  const col = (v: number) => ({ data: new Float32Array(n).fill(v), shape: [n, 1] });
  const [x] = await inChunks(euler, [{ data: normal(foldIn(key(0), 7), n * d), shape: [n, d] }, col(1), col(0.5), conditions(idx), conditions(idx.map(() => -1)), col(w)], n, Math.min(n, BUNDLE_ROWS));
  const bad = idx.find((i) => !x.data.subarray(i * d, (i + 1) * d).every(Number.isFinite));
  if (bad !== undefined) {
    throw new ConfigError(`the teacher's velocity is not finite for prompt ${JSON.stringify(prompts[bad])} (or the empty prompt): check its condition in the embeddings table (a class label beyond the network's embedding? a mask of the wrong kind?)`);
  }
}

/**
 * Relative error of tbcm's teacher against onnxruntime on the teacher's file (parity.ts) above
 * which a run warns, and above which it stops: float32 programs agree to ~1e-6; a float16 file
 * computes in half precision (~1e-3).
 */
const PARITY_WARN = { float32: 1e-3, float16: 2e-2 }, PARITY_STOP = { float32: 1e-2, float16: 1e-1 };

/** The check of parity.ts through the teacher's Euler-step program (one step of length 1 from s, at scale 1 for CFG: x + v). */
async function checkTeacherParity(euler: Inference, b: LoadedBundle, rows: HostTensor, uncond: HostTensor, cfg: BundleConfig): Promise<{ error: number; warning?: string }> {
  const guided = b.manifest.transformer.inputs.guidance !== "";
  const parity = await teacherParity(b, rows, guided ? b.manifest.defaultGuidance : 1, cfg.device, async (x, s, c, w) => {
    const sNext = { data: s.data.map((v) => v + 1), shape: s.shape };
    const [y] = await inChunks(euler, [x, s, sNext, c, uncond, w], x.shape[0], Math.min(x.shape[0], BUNDLE_ROWS));
    return y.data.map((v, i) => v - x.data[i]);
  });
  if ("skipped" in parity) return { error: NaN, warning: `the imported teacher was not checked against onnxruntime: ${parity.skipped}` };
  const half = b.transformer.inputs.some((i) => i.dtype === "float16") ? "float16" : "float32";
  const e = parity.relativeError, file = b.transformer.file;
  if (!(e <= PARITY_STOP[half])) {
    throw new ConfigError(`tbcm's import of "${file}" computes a different velocity than onnxruntime does on the file (relative error ${e.toExponential(2)}, limit ${PARITY_STOP[half]}): an operator is imported wrongly; please report it with the file's operator list`);
  }
  return { error: e, ...(e > PARITY_WARN[half] ? { warning: `tbcm's import of "${file}" differs from onnxruntime on the file by ${e.toExponential(2)} (relative; expected below ${PARITY_WARN[half]})` } : {}) };
}

/** What `checkTeacher` measured: the import against onnxruntime (NaN: not checked), the noise spread (parity.ts), and the warnings they raise. */
export type TeacherChecks = { readonly importError: number; readonly noiseSpread: number; readonly warnings: readonly string[] };

/**
 * The checks before a bundle run trains: one guided step on every prompt is finite (one line
 * naming the prompt otherwise), the import agrees with onnxruntime on the file (parity.ts; a large
 * error stops the run), and the velocity at pure noise looks like a flow velocity (a warning).
 */
export async function checkTeacher(euler: Inference, b: LoadedBundle, cfg: BundleConfig, prompts: readonly string[], hostConditions: (idx: readonly number[]) => HostTensor): Promise<TeacherChecks> {
  const m = b.manifest, d = b.dim, warnings: string[] = [];
  await checkTeacherFinite(euler, prompts, hostConditions, d, cfg.eval.guidance);
  const n = Math.min(prompts.length, 4), idx = globalThis.Array.from({ length: n }, (_, i) => i);
  const parity = await checkTeacherParity(euler, b, hostConditions(idx), hostConditions(idx.map(() => -1)), cfg);
  if (parity.warning) warnings.push(parity.warning);
  // the conventions: at pure noise, one prompt (w 1: its conditional velocity; a guided teacher at its default scale)
  const n32 = 32, w = m.transformer.inputs.guidance ? m.defaultGuidance : 1;
  const col = (v: number) => ({ data: new Float32Array(n32).fill(v), shape: [n32, 1] });
  const spread = await noiseSpread(n32, d, async (x) => {
    const [y] = await inChunks(euler, [x, col(1), col(2), hostConditions(new globalThis.Array(n32).fill(0)), hostConditions(new globalThis.Array(n32).fill(-1)), col(w)], n32, Math.min(n32, BUNDLE_ROWS));
    return y.data.map((v, i) => v - x.data[i]);
  });
  if (spread > NOISE_SPREAD_WARN) {
    warnings.push(`at pure noise the teacher's velocity is not the noise minus a constant, as a flow-matching velocity is (spread ${spread.toFixed(2)}, expected below ${NOISE_SPREAD_WARN}): check teacher.json's transformer.time_scale (1000 for diffusers' timesteps), noise_at and prediction`);
  }
  return { importError: parity.error, noiseSpread: spread, warnings };
}

