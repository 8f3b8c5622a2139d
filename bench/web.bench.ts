/**
 * The exported student in onnxruntime-web (WebAssembly, what a browser page runs; here in Node)
 * next to onnxruntime-node, one thread each: median ms per call of the text encoder, generator and
 * VAE decoder, float32 and int8 exports (`tbcm export [--int8]`), at each batch size.
 *
 *   npx tsx bench/web.bench.ts runs/fmnist-tbcm [--batch 1,8] [--iters 40]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import * as ortWeb from "onnxruntime-web";
import * as ortNode from "onnxruntime-node";
import { exportStudent } from "../src/run/export.ts";
import { tempDir } from "../test/tempDir.ts"; // scratch, removed when the bench exits

const { values, positionals } = parseArgs({ options: { batch: { type: "string" }, iters: { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const batches = (values.batch ?? "1,8").split(",").map(Number), iters = Number(values.iters ?? 40);
ortWeb.env.wasm.numThreads = 1;

const median = async (f: () => Promise<unknown>) => {
  for (let i = 0; i < 5; i++) await f();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) { const t0 = performance.now(); await f(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(iters / 2)];
};

console.log(`exported student of ${run}, 1 thread, median ms of ${iters} calls (onnxruntime-web: WebAssembly SIMD, no worker threads)`);
console.log("| batch | matmuls | runtime | text encoder | generator | decoder | ms per image |");
console.log("|---|---|---|---|---|---|---|");
for (const batch of batches) for (const int8 of [false, true]) {
  const dir = tempDir("tbcm-web-bench-");
  await exportStudent(run, dir, batch, { int8 });
  const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
  const d = m.inputs.noise.shape[1], L = m.tokenizer.max_words;
  for (const [name, ort] of [["web", ortWeb], ["node", ortNode]] as const) {
    const runtime = ort as typeof ortNode;
    const options = name === "node" ? { intraOpNumThreads: 1 } : {};
    const open = (f: string) => runtime.InferenceSession.create(readFileSync(join(dir, f)), options);
    const [text, generator, decoder] = [await open("text_encoder.onnx"), await open("generator.onnx"), await open("vae_decoder.onnx")];
    const T = runtime.Tensor;
    const ids = new T("float32", Float32Array.from({ length: batch * L }, (_, i) => (i % L < 4 ? 3 + (i % 5) : 0)), [batch, L]);
    const { cond } = await text.run({ token_ids: ids });
    const feeds = { noise: new T("float32", Float32Array.from({ length: batch * d }, (_, i) => Math.sin(i)), [batch, d]), cond, guidance: new T("float32", new Float32Array(batch).fill(4.5), [batch, 1]) };
    const { latent } = await generator.run(feeds);
    const ms = [await median(() => text.run({ token_ids: ids })), await median(() => generator.run(feeds)), await median(() => decoder.run({ latent }))];
    console.log(`| ${batch} | ${int8 ? "int8" : "fp32"} | ${name} | ${ms.map((x) => x.toFixed(2)).join(" | ")} | ${(ms.reduce((a, b) => a + b) / batch).toFixed(2)} |`);
    for (const s of [text, generator, decoder]) await s.release();
  }
}
