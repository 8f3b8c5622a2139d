/**
 * Reference inputs and outputs of an exported text-to-image student (issue #5), for
 * `bench/python_ort_check.py`: runs the three ONNX files of `tbcm export` in onnxruntime-node
 * (default session options) on fixed inputs and writes inputs and outputs as .npy files, plus
 * `reference.json`. With `--run`, also the pixels of `tbcm sample --run <run> --steps <the export's>`
 * for the same prompts, seed, guidance and η (the jax-js-lowered sampler, not the exported files).
 *
 *   npx tsx src/cli/main.ts export --run runs/fmnist-tbcm --out /tmp/tbcm-export --batch 4
 *   npx tsx bench/export-reference.ts --export /tmp/tbcm-export --out /tmp/tbcm-ref \
 *     [--run runs/fmnist-tbcm] [--seed 5] [--guidance 4.5] ["a prompt" ...]
 *
 * Inputs, n = number of prompts, rows in prompt order:
 *   token_ids.npy [n, L]  the project's tokenizer (src/data/tokenizer.ts) over the manifest's vocab
 *   noise.npy     [n, d]  normal(foldIn(key(seed), 0), n·d) of src/numerics/random.ts — exactly
 *                         what `tbcm sample --seed <seed>` draws for n prompts; row i = prompt i
 *   guidance.npy  [n, 1]  the guidance scale
 *   noise_stepK.npy [n, d] for an export with `--steps N` (K = 2 … N): normal(foldIn(foldIn(key(seed), 1), K − 1), n·d),
 *                         the later noises `tbcm sample --steps N` draws
 * Outputs: cond.npy [n, L+1, D+1], latent.npy [n, d], image.npy [n, 784]; sample.npy [n, 784] with --run.
 * The files have a fixed batch B (manifest); prompts go through in chunks of B, the last one
 * padded with empty prompts and zero noise, whose rows are dropped.
 */
import "../src/numerics/threads.ts"; // before anything loads jax-js (sampleImages)
import { parseArgs } from "node:util";
import { join } from "node:path";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as ort from "onnxruntime-node";
import { buildTokenizerFromVocab, encode } from "../src/data/tokenizer.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const DEFAULT_PROMPTS = ["a photo of a sneaker", "a bag", "an ankle boot on a wooden floor", "a picture of a dress"];

const { values, positionals } = parseArgs({
  options: { export: { type: "string" }, out: { type: "string" }, run: { type: "string" }, seed: { type: "string" }, guidance: { type: "string" } },
  allowPositionals: true,
});
if (!values.export || !values.out) throw new Error("usage: export-reference.ts --export <dir> --out <dir> [--run <dir>] [--seed 5] [--guidance 4.5] [prompts...]");
const exportDir = values.export, outDir = values.out;
const seed = Number(values.seed ?? 5), guidance = Number(values.guidance ?? 4.5);
const prompts = positionals.length ? positionals : DEFAULT_PROMPTS;

type Manifest = {
  format: string;
  models: { text_encoder: string; generator: string; vae_decoder: string };
  inputs: Record<"token_ids" | "noise" | "guidance", { shape: number[] }>;
  steps?: number;
  renoise_eta?: number;
  tokenizer: { vocab: string[]; max_words: number };
};
const manifest = JSON.parse(readFileSync(join(exportDir, "manifest.json"), "utf8")) as Manifest;
if (manifest.format !== "tbcm-onnx-text-to-image-1") throw new Error(`${exportDir} holds a "${manifest.format}" export; this check is for the stack's text-to-image export`);
const [B, L] = manifest.inputs.token_ids.shape, d = manifest.inputs.noise.shape[1];
const n = prompts.length;

const tok = buildTokenizerFromVocab(manifest.tokenizer.vocab);
const ids = Float32Array.from(prompts.flatMap((p) => Array.from(encode(tok, p, L))));
const noise = normal(foldIn(key(seed), 0), n * d);
const steps = manifest.steps ?? 1;
const later = Array.from({ length: steps - 1 }, (_, i) => normal(foldIn(foldIn(key(seed), 1), i + 1), n * d));
const w = new Float32Array(n).fill(guidance);

/** A NumPy .npy (format 1.0) file of little-endian float32. */
function writeNpy(path: string, data: Float32Array, shape: number[]) {
  if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`${path}: ${data.length} values for shape ${shape}`);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1, " ") + "\n";
  const pre = Buffer.alloc(10);
  pre.write("\x93NUMPY", 0, "latin1");
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, "latin1"), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

const session = (f: string) => ort.InferenceSession.create(join(exportDir, f));
const [text, gen, dec] = [await session(manifest.models.text_encoder), await session(manifest.models.generator), await session(manifest.models.vae_decoder)];
const outs: Record<"cond" | "latent" | "image", { rows: Float32Array[]; tail: number[] }> = { cond: { rows: [], tail: [] }, latent: { rows: [], tail: [] }, image: { rows: [], tail: [] } };
for (let s = 0; s < n; s += B) {
  const m = Math.min(B, n - s);
  const chunk = (src: Float32Array, width: number) => { const x = new Float32Array(B * width); x.set(src.subarray(s * width, (s + m) * width)); return x; };
  const { cond } = await text.run({ token_ids: new ort.Tensor("float32", chunk(ids, L), [B, L]) });
  const laterFeeds = Object.fromEntries(later.map((x, i) => [`noise_step${i + 2}`, new ort.Tensor("float32", chunk(x, d), [B, d])]));
  const { latent } = await gen.run({ noise: new ort.Tensor("float32", chunk(noise, d), [B, d]), cond, guidance: new ort.Tensor("float32", chunk(w, 1), [B, 1]), ...laterFeeds });
  const { image } = await dec.run({ latent });
  for (const [name, t] of [["cond", cond], ["latent", latent], ["image", image]] as const) {
    const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
    outs[name].rows.push((t.data as Float32Array).slice(0, m * width));
    outs[name].tail = t.dims.slice(1).map(Number);
  }
}
for (const x of [text, gen, dec]) await x.release();

mkdirSync(outDir, { recursive: true });
const cat = (rows: Float32Array[]) => { const x = new Float32Array(rows.reduce((a, r) => a + r.length, 0)); let o = 0; for (const r of rows) { x.set(r, o); o += r.length; } return x; };
writeNpy(join(outDir, "token_ids.npy"), ids, [n, L]);
writeNpy(join(outDir, "noise.npy"), noise, [n, d]);
writeNpy(join(outDir, "guidance.npy"), w, [n, 1]);
later.forEach((x, i) => writeNpy(join(outDir, `noise_step${i + 2}.npy`), x, [n, d]));
for (const [name, o] of Object.entries(outs)) writeNpy(join(outDir, `${name}.npy`), cat(o.rows), [n, ...o.tail]);

let sample = false;
if (values.run) {
  const { sampleImages } = await import("../src/run/sample.ts");
  const r = await sampleImages({ run: values.run, prompts, steps, seed, guidance, eta: manifest.renoise_eta });
  writeNpy(join(outDir, "sample.npy"), r.pixels, [n, r.height * r.width]);
  sample = true;
}

const ortVersion = (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string }).version;
const reference = {
  export_dir: exportDir, batch: B, prompts, seed, guidance, steps,
  noise: "normal(foldIn(key(seed), 0), n*d) of src/numerics/random.ts, row i = prompt i (what `tbcm sample --seed` draws)",
  runtime: `onnxruntime-node ${ortVersion}, default session options`,
  files: ["token_ids.npy", "noise.npy", "guidance.npy", ...later.map((_, i) => `noise_step${i + 2}.npy`), "cond.npy", "latent.npy", "image.npy", ...(sample ? ["sample.npy"] : [])],
  sample: sample ? { run: values.run, what: `tbcm sample --steps ${steps} pixels (sampleImages), same prompts, seed, guidance, η` } : null,
};
writeFileSync(join(outDir, "reference.json"), JSON.stringify(reference, null, 2) + "\n");
console.log(JSON.stringify({ out: outDir, prompts: n, batch: B, files: reference.files }));
