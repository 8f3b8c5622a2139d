/**
 * The real-data side of the evaluations, shipped with the evaluator so that a machine without
 * Fashion-MNIST can evaluate (issue #14): `evaluator-reference.safetensors` next to
 * `evaluator.safetensors` holds the test split's evaluator-feature statistics (mean [128],
 * covariance [128, 128] in float64, predictions [10000] in int32) and real-vs-real FD floors
 * (n training images drawn with a seed vs the test split) for listed (seed, n) settings, exactly
 * as `referenceStatistics` computes them from the data, so FDs come out identical to every digit.
 *
 * The file names the SHA-256 of the evaluator it belongs to; a retrained evaluator makes it stale
 * (ignored, and written again by `tbcm train-evaluator`). Written by
 * `npx tsx scripts/evaluator-reference.ts` (see models/fmnist/evaluator.md).
 *
 * Which statistics an evaluation uses (`planReference`):
 * - the test statistics come from the file when it belongs to the evaluator, else from the data;
 * - the floor of (seed, n) comes from the file when it lists that setting, else from the data;
 * - without the data and without that setting, the file's floor of the nearest n (then lowest
 *   seed) stands in, and `fd_floor_seed` / `fd_floor_samples` in metrics.json say which it is;
 * - without the data and without a usable file, the evaluation cannot run: an error says so
 *   before any training starts.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, basename } from "node:path";
import { key, foldIn } from "../numerics/random.ts";
import { writeFileAtomic } from "../numerics/safetensors.ts";
import { shippedPath } from "../paths.ts";
import { ImageStatistics, type Evaluator } from "../eval/evaluator.ts";
import { missingFashionMnist, fashionMnistHint, type Split } from "../data/fashionMnist.ts";
import { loadSplit, drawIndices, pixels, allPixels } from "./common.ts";

export const REFERENCE_KIND = "tbcm-evaluator-reference";

/** A shipped floor: FD of `samples` training images drawn with `seed` vs the test split. */
export type FloorEntry = { seed: number; samples: number; fd: number };

export type ReferenceFile = { test: ImageStatistics; floors: FloorEntry[]; evaluatorSha256: string; testCount: number };

/** The reference file that belongs with an evaluator: `<dir>/<name>-reference.safetensors`. */
export function referencePath(evaluatorPath: string): string {
  evaluatorPath = shippedPath(evaluatorPath);
  return join(dirname(evaluatorPath), `${basename(evaluatorPath).replace(/\.safetensors$/, "")}-reference.safetensors`);
}

export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** The floor's train subset for (seed, n), as `referenceStatistics` has always drawn it. */
export function floorKey(seed: number) {
  return foldIn(key(seed), 99);
}

// --- file format: safetensors with float64 / int32 tensors (readable from Python's safetensors) ---

type Raw = { dtype: "F64" | "I32"; shape: number[]; data: Float64Array | Int32Array };

function encode(tensors: Record<string, Raw>, metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function decode(bytes: Uint8Array, source: string): { tensors: Record<string, Raw>; metadata: Record<string, string> } {
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, any>;
  const base = 8 + headerLength;
  const tensors: Record<string, Raw> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = info.data_offsets as [number, number];
    if (base + end > bytes.length) throw new Error(`${source}: tensor "${name}" runs past the end of the file (truncated?)`);
    const copy = new Uint8Array(bytes.subarray(base + begin, base + end)).buffer;
    if (info.dtype === "F64") tensors[name] = { dtype: "F64", shape: info.shape, data: new Float64Array(copy) };
    else if (info.dtype === "I32") tensors[name] = { dtype: "I32", shape: info.shape, data: new Int32Array(copy) };
    else throw new Error(`${source}: tensor "${name}" has dtype ${info.dtype}; expected F64 or I32`);
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

export function writeReferenceFile(path: string, ref: ReferenceFile): void {
  const f = ref.test.mean.length;
  writeFileAtomic(path, encode({
    test_mean: { dtype: "F64", shape: [f], data: ref.test.mean },
    test_cov: { dtype: "F64", shape: [f, f], data: ref.test.cov },
    test_predictions: { dtype: "I32", shape: [ref.test.predictions.length], data: ref.test.predictions },
    floor_fd: { dtype: "F64", shape: [ref.floors.length], data: Float64Array.from(ref.floors, (e) => e.fd) },
    floor_seed: { dtype: "I32", shape: [ref.floors.length], data: Int32Array.from(ref.floors, (e) => e.seed) },
    floor_samples: { dtype: "I32", shape: [ref.floors.length], data: Int32Array.from(ref.floors, (e) => e.samples) },
  }, {
    kind: REFERENCE_KIND, evaluator_sha256: ref.evaluatorSha256, test_count: String(ref.testCount),
    about: "Fashion-MNIST test split: evaluator features' mean and covariance, predictions; real-vs-real FD floors "
      + "(floor_samples training images drawn with floor_seed vs the test split). Written by scripts/evaluator-reference.ts.",
  }));
}

/** The reference file of an evaluator, or why it cannot be used. */
export function readReferenceFile(evaluatorPath: string): { ref: ReferenceFile } | { reason: string } {
  const path = referencePath(evaluatorPath);
  if (!existsSync(path)) return { reason: `no ${path}` };
  const { tensors: t, metadata } = decode(readFileSync(path), path);
  if (metadata.kind !== REFERENCE_KIND) return { reason: `${path} is not an evaluator reference (kind ${metadata.kind})` };
  const sha = existsSync(shippedPath(evaluatorPath)) ? fileSha256(shippedPath(evaluatorPath)) : "";
  if (metadata.evaluator_sha256 !== sha) return { reason: `${path} belongs to another evaluator than ${evaluatorPath} (stale: write it again with scripts/evaluator-reference.ts)` };
  const floors = globalThis.Array.from(t.floor_fd.data, (fd, i) => ({ fd, seed: t.floor_seed.data[i], samples: t.floor_samples.data[i] }));
  const test = new ImageStatistics(t.test_mean.data as Float64Array, t.test_cov.data as Float64Array, t.test_predictions.data as Int32Array);
  return { ref: { test, floors, evaluatorSha256: sha, testCount: Number(metadata.test_count) } };
}

/** Test statistics and floors of an evaluator, computed from the data (floors: (seed, n) settings). */
export async function computeReference(evaluatorPath: string, evaluator: Evaluator, dataDir: string, settings: { seed: number; samples: number }[]): Promise<ReferenceFile> {
  const testSet = loadSplit(dataDir, "test");
  const test = await evaluator.statistics(allPixels(testSet));
  const train = loadSplit(dataDir, "train");
  const floors: FloorEntry[] = [];
  for (const { seed, samples } of settings) {
    const n = Math.min(samples, train.count);
    const subset = await evaluator.statistics(pixels(train, drawIndices(floorKey(seed), train, n)));
    floors.push({ seed, samples, fd: subset.frechetDistance(test) });
  }
  return { test, floors, evaluatorSha256: fileSha256(evaluatorPath), testCount: testSet.count };
}

/** Where an evaluation's test statistics and floor come from. */
export type ReferencePlan = {
  test: "file" | "data";
  floor: "file" | "data" | "substitute";
  /** The setting of the floor used (differs from the asked one when substituted). */
  floorSeed: number;
  floorSamples: number;
  /** Set when the floor is substituted: one line saying so. */
  warning?: string;
};

/**
 * Decides, without loading anything heavy, where the test statistics and the floor of (seed, n)
 * will come from; throws (with the install hint) when neither the reference file nor the data
 * can provide them. Call it before training so a run never fails at its final evaluation.
 */
export function planReference(evaluatorPath: string, dataDir: string, seed: number, n: number): ReferencePlan {
  const file = readReferenceFile(evaluatorPath);
  const missing = (splits: Split[]) => missingFashionMnist(dataDir, splits);
  if (!("ref" in file)) {
    const gone = missing(["test", "train"]);
    if (gone) throw new Error(`the evaluation needs the Fashion-MNIST test and train splits (${gone}) or a reference file next to the evaluator (${file.reason}): ${fashionMnistHint}`);
    return { test: "data", floor: "data", floorSeed: seed, floorSamples: n };
  }
  const { floors } = file.ref;
  if (floors.some((e) => e.seed === seed && e.samples === n)) return { test: "file", floor: "file", floorSeed: seed, floorSamples: n };
  if (!missing(["train"])) return { test: "file", floor: "data", floorSeed: seed, floorSamples: n };
  if (floors.length === 0) throw new Error(`the FD floor needs the Fashion-MNIST train split, and ${referencePath(evaluatorPath)} lists no floor: ${fashionMnistHint}`);
  const best = [...floors].sort((a, b) => Math.abs(a.samples - n) - Math.abs(b.samples - n) || a.seed - b.seed)[0];
  return {
    test: "file", floor: "substitute", floorSeed: best.seed, floorSamples: best.samples,
    warning: `the FD floor of seed ${seed} with ${n} images needs the Fashion-MNIST train split (not installed); `
      + `the shipped floor of seed ${best.seed} with ${best.samples} images stands in (fd_floor_seed / fd_floor_samples in metrics.json). ${fashionMnistHint}`,
  };
}

/** The test split's statistics and the floor of (seed, n) for an evaluation, following `planReference`. */
export async function resolveReference(evaluatorPath: string, evaluator: Evaluator, dataDir: string, seed: number, n: number) {
  const plan = planReference(evaluatorPath, dataDir, seed, n);
  const file = readReferenceFile(evaluatorPath);
  const ref = "ref" in file ? file.ref : undefined;
  const test = plan.test === "file" ? ref!.test : await evaluator.statistics(allPixels(loadSplit(dataDir, "test")));
  let floor: number;
  if (plan.floor === "data") {
    const train = loadSplit(dataDir, "train");
    const subset = await evaluator.statistics(pixels(train, drawIndices(floorKey(seed), train, Math.min(n, train.count))));
    floor = subset.frechetDistance(test);
  } else {
    floor = ref!.floors.find((e) => e.seed === plan.floorSeed && e.samples === plan.floorSamples)!.fd;
  }
  return { test, floor, plan };
}
