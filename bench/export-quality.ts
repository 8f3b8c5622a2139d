/**
 * What int8 matrix products cost in quality (bench/RESULTS.md §13, §17): the exported 1-step
 * generator and VAE decoder, float32 and int8, run by onnxruntime-node on the eval prompts with
 * the noises of the run's evaluation; FD and prompt accuracy of each combination, how far the int8
 * latents are from the float32 ones, and how far the images are from the all-float32 ones.
 *
 *   npx tsx bench/export-quality.ts runs/fmnist-tbcm [--samples 1000]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { exportStudent } from "../src/run/export.ts";
import { StackPipeline } from "../src/stack/pipeline.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { referenceStatistics, evalPrompts, EVAL_PROMPTS } from "../src/stack/teacherReport.ts";
import { normal } from "../src/numerics/random.ts";
import { evalKeys } from "../src/train/distill.ts";
import { tempDir } from "../test/tempDir.ts"; // scratch, removed when the bench exits

const { values, positionals } = parseArgs({ options: { samples: { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const n = Number(values.samples ?? 1000), batch = 250;
if (n % batch !== 0) throw new Error(`--samples must be a multiple of ${batch}`);
const pipe = StackPipeline.load({ teacher: "models/fmnist/teacher.safetensors", vae: "models/fmnist/vae.safetensors" });
const evaluator = await Evaluator.load("models/fmnist/evaluator.safetensors", "onnx");
const { test, floor } = await referenceStatistics("", 0, evaluator, n);
const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const cond = await pipe.conditions(prompts);
const d = pipe.latentDim, perRow = cond.data.length / n;
const noise = normal(evalKeys(0).eval, n * d); // the noises of a seed-0 run's evaluation

/** Latents from the exported generator and their images from the exported decoder. */
async function generate(int8: boolean, int8Decoder: boolean): Promise<{ latents: Float32Array; images: Float32Array }> {
  const dir = tempDir("tbcm-export-quality-");
  await exportStudent(run, dir, batch, { int8, int8Decoder });
  const session = await ort.InferenceSession.create(join(dir, "generator.onnx"), { intraOpNumThreads: 2 });
  const decoder = await ort.InferenceSession.create(join(dir, "vae_decoder.onnx"), { intraOpNumThreads: 2 });
  const latents = new Float32Array(n * d), images = new Float32Array(n * 784);
  for (let i = 0; i < n; i += batch) {
    const { latent } = await session.run({
      noise: new ort.Tensor("float32", noise.slice(i * d, (i + batch) * d), [batch, d]),
      cond: new ort.Tensor("float32", cond.data.slice(i * perRow, (i + batch) * perRow), cond.shape.map((s, j) => (j === 0 ? batch : s))),
      guidance: new ort.Tensor("float32", new Float32Array(batch).fill(4.5), [batch, 1]),
    });
    latents.set(latent.data as Float32Array, i * d);
    images.set((await decoder.run({ latent })).image.data as Float32Array, i * 784);
  }
  await session.release();
  await decoder.release();
  return { latents, images };
}

const variants = [["float32", "float32", await generate(false, false)], ["int8", "float32", await generate(true, false)], ["int8", "int8", await generate(true, true)]] as const;
const fp32 = variants[0][2].latents, int8 = variants[1][2].latents;
let se = 0, ss = 0, maxAbs = 0;
for (let i = 0; i < fp32.length; i++) {
  const e = int8[i] - fp32[i];
  se += e * e; ss += fp32[i] * fp32[i]; maxAbs = Math.max(maxAbs, Math.abs(e));
}
console.log(`exported generator of ${run}, ${n} images on the eval prompts, guidance 4.5; FD floor ${floor.toFixed(3)}`);
console.log(`int8 vs float32 latents: relative MSE ${(se / ss).toExponential(2)}, max |Δ| ${maxAbs.toFixed(4)}`);
const pixelError = (a: Float32Array, b: Float32Array) => { let s = 0, m = 0; for (let i = 0; i < a.length; i++) { const e = Math.abs(a[i] - b[i]); s += e; m = Math.max(m, e); } return `${(s / a.length).toFixed(4)} / ${m.toFixed(3)}`; };
console.log("| generator matmuls | decoder matmuls | FD | FD / floor | prompt accuracy | pixels vs all-float32, mean / max |Δ| |");
console.log("|---|---|---|---|---|---|");
for (const [gen, dec, { images }] of variants) {
  const stats = await evaluator.statistics(images);
  const fd = stats.frechetDistance(test);
  console.log(`| ${gen} | ${dec} | ${fd.toFixed(2)} | ${(fd / floor).toFixed(2)} | ${stats.accuracy(labels).toFixed(3)} | ${pixelError(images, variants[0][2].images)} |`);
}
await evaluator.dispose();
await pipe.dispose();
