/**
 * The exported text-to-image student (issue #5): ms per 1-step 28×28 image at batch 1 and images/s
 * batched, through onnxruntime-node, for the generator alone and for the whole pipeline
 * (text encoder → generator → VAE decoder). Exports the run first (batch 1 and batch B).
 * GFLOP/s counts the generator's matrix products (the manifest's `matmul_flops`); "% of peak" is
 * against a large square MatMul timed by the same runtime and threads (the achievable sgemm peak).
 *
 *   npx tsx bench/export.bench.ts runs/fmnist-tbcm [--batch 256 | --batch 16,64,256] [--iters 200] [--threads 1]
 *     [--int8] [--steps 1]   (--steps N: the generator runs N student steps, `tbcm export --steps N`)
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { exportStudent } from "../src/run/export.ts";
import { DataType, encodeModel } from "../src/executor/onnxProto.ts";
import { tempDir } from "../test/tempDir.ts"; // scratch, removed when the bench exits

const { values, positionals } = parseArgs({ options: { batch: { type: "string" }, iters: { type: "string" }, threads: { type: "string" }, int8: { type: "boolean" }, spin: { type: "string" }, steps: { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const steps = Number(values.steps ?? 1);
const batches = (values.batch ?? "256").split(",").map(Number), iters = Number(values.iters ?? 200), threads = Number(values.threads ?? 1);
const opts = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential" as const, graphOptimizationLevel: "all" as const,
  // a session's idle intra-op threads spin for a while after each run; with three sessions
  // chained on two cores that steals the next session's time (--spin 0 turns it off)
  extra: { session: { intra_op: { allow_spinning: values.spin ?? "1" } } } };

const median = async (f: () => Promise<unknown>, n: number) => {
  for (let i = 0; i < Math.min(10, n); i++) await f();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await f(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(n / 2)];
};

/** GFLOP/s of one [N, N]·[N, N] MatMul in onnxruntime-node with these options. */
async function matmulPeak(N = 1536): Promise<number> {
  const info = (name: string) => ({ name, elemType: DataType.FLOAT, shape: [N, N] });
  const model = encodeModel({ graph: { name: "peak", nodes: [{ opType: "MatMul", inputs: ["a", "b"], outputs: ["c"], name: "mm" }], initializers: [], inputs: [info("a"), info("b")], outputs: [info("c")] } });
  const session = await ort.InferenceSession.create(model, opts);
  const x = new ort.Tensor("float32", Float32Array.from({ length: N * N }, (_, i) => Math.sin(i)), [N, N]);
  const ms = await median(() => session.run({ a: x, b: x }), 20);
  await session.release();
  return (2 * N ** 3) / ms / 1e6;
}

let flopsPerImage = 0;
type Timing = { text: number; generator: number; decoder: number; pipeline: number };
async function timeBatch(batch: number, int8: boolean): Promise<Timing> {
  const dir = tempDir("tbcm-export-bench-");
  const m = await exportStudent(run, dir, batch, { int8, steps }) as unknown as { inputs: Record<string, { shape: number[] }>; tokenizer: { max_words: number }; matmul_flops: Record<string, number> };
  flopsPerImage = m.matmul_flops["generator.onnx"] / batch;
  const s = async (f: string) => ort.InferenceSession.create(join(dir, f), opts);
  const [text, gen, dec] = [await s("text_encoder.onnx"), await s("generator.onnx"), await s("vae_decoder.onnx")];
  const d = m.inputs.noise.shape[1];
  const ids = new ort.Tensor("float32", Float32Array.from({ length: batch * m.tokenizer.max_words }, (_, i) => (i % 8 < 4 ? 3 + (i % 5) : 0)), [batch, m.tokenizer.max_words]);
  const noise = new ort.Tensor("float32", Float32Array.from({ length: batch * d }, (_, i) => Math.sin(i)), [batch, d]);
  const guidance = new ort.Tensor("float32", new Float32Array(batch).fill(4.5), [batch, 1]);
  const later = Object.fromEntries(Array.from({ length: steps - 1 }, (_, i) => [`noise_step${i + 2}`, noise]));
  const { cond } = await text.run({ token_ids: ids });
  const n = batch === 1 ? iters : Math.max(5, Math.round(iters / 20));
  const text_ = await median(() => text.run({ token_ids: ids }), n);
  const generator = await median(() => gen.run({ noise, cond, guidance, ...later }), n);
  const { latent } = await gen.run({ noise, cond, guidance, ...later });
  const decoder = await median(() => dec.run({ latent }), n);
  const pipeline = await median(async () => {
    const c = await text.run({ token_ids: ids });
    const { latent } = await gen.run({ noise, cond: c.cond, guidance, ...later });
    return dec.run({ latent });
  }, n);
  for (const x of [text, gen, dec]) await x.release();
  return { text: text_, generator, decoder, pipeline };
}

const variants = values.int8 ? [false, true] : [false];
const results: [number, boolean, Timing][] = [];
for (const b of [1, ...batches]) for (const int8 of variants) results.push([b, int8, await timeBatch(b, int8)]);
const peak = await matmulPeak();
console.log(`exported ${steps}-step student of ${run}, onnxruntime-node, ${threads} intra-op thread(s); median ms; generator ${(flopsPerImage / 1e6).toFixed(1)} MFLOP/image in matrix products; MatMul peak ${peak.toFixed(0)} GFLOP/s`);
console.log("| batch | matmuls | generator ms | generator images/s | generator GFLOP/s | % of MatMul peak | text encoder ms | decoder ms | text+generator+decoder ms | pipeline images/s |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const [b, int8, r] of results) {
  const gflops = (flopsPerImage * b) / r.generator / 1e6;
  console.log(`| ${b} | ${int8 ? "int8" : "fp32"} | ${r.generator.toFixed(2)} | ${Math.round((1000 * b) / r.generator)} | ${gflops.toFixed(1)} | ${((100 * gflops) / peak).toFixed(0)}% | ${r.text.toFixed(2)} | ${r.decoder.toFixed(2)} | ${r.pipeline.toFixed(2)} | ${Math.round((1000 * b) / r.pipeline)} |`);
}
