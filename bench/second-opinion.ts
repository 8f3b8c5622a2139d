/**
 * A second opinion on stack students (issue #13: "improve the images, not one metric"): the teacher
 * (16 steps, its default schedule) and each run's student at 1, 2 and 4 steps (the run's own sampler
 * settings) on the same eval prompts and noises, scored by the shipped evaluator and by other
 * feature extractors the project never trains against:
 *
 * - `--evaluator FILE` (repeatable): other tbcm evaluators, e.g. one trained by
 *   `tbcm train-evaluator` with another width and seed (a different network of the same family);
 * - pixels: FD of the raw pixels projected on the 64 leading principal components of the real
 *   test images (no network at all: sensitive to blur and layout, blind to class).
 *
 *   npx tsx bench/second-opinion.ts RUN [RUN …] [--evaluator FILE …] [--samples 2000] [--seed 1]
 *
 * Needs the Fashion-MNIST test split (the real statistics of the other extractors).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { StackPipeline } from "../src/stack/pipeline.ts";
import { Evaluator, type ImageStatistics } from "../src/eval/evaluator.ts";
import { evalPrompts, EVAL_PROMPTS, TEACHER_GUIDANCE, TEACHER_GUIDANCE_SCHEDULE } from "../src/stack/teacherReport.ts";
import { initDit, withStudentHeads } from "../src/models/dit.ts";
import { loadParams } from "../src/numerics/params.ts";
import { ditStudent } from "../src/stack/student.ts";
import { studentSampleLatents } from "../src/eval/studentSamples.ts";
import { configOf } from "../src/config/schema.ts";
import { openRun } from "../src/run/open.ts";
import { loadSplit, allPixels } from "../src/stack/common.ts";
import { featureMoments, frechetDistance, symmetricEigen } from "../src/eval/frechet.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" }, evaluator: { type: "string", multiple: true } }, allowPositionals: true });
const runs = positionals.length ? positionals : ["runs/fmnist-tbcm"];
const n = Number(values.samples ?? 2000);
const first = configOf(openRun(runs[0]).config, "stack");
const pipe = StackPipeline.load({ teacher: first.teacher.model, vae: first.teacher.vae });
const extractors = [first.teacher.evaluator, ...(values.evaluator ?? [])];
const evaluators = await Promise.all(extractors.map((p) => Evaluator.load(p, "onnx")));
const test = allPixels(loadSplit("", "test"));
const P = 784, nTest = test.length / P;

// pixels on the real test images' 64 leading principal components
const PCS = 64;
const real = featureMoments(test, nTest, P);
const { values: variances, vectors } = symmetricEigen(real.cov, P);
// Jacobi leaves the eigenvalues unordered: the leading components by variance
const leading = [...variances.keys()].sort((a, b) => variances[b] - variances[a]).slice(0, PCS);
const project = (pixels: Float32Array) => {
  const m = pixels.length / P, out = new Float32Array(m * PCS);
  for (let i = 0; i < m; i++) for (let c = 0; c < PCS; c++) {
    let s = 0;
    const col = leading[c];
    for (let j = 0; j < P; j++) s += (pixels[i * P + j] - real.mean[j]) * vectors[j * P + col];
    out[i * PCS + c] = s;
  }
  return featureMoments(out, m, PCS);
};
const realPcs = project(test);
const realStats: ImageStatistics[] = await Promise.all(evaluators.map((e) => e.statistics(test)));

const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const k = foldIn(key(Number(values.seed ?? 1)), 77);
const noise = normal(foldIn(k, 0), n * pipe.latentDim);
const names = extractors.map((p, i) => (i === 0 ? "shipped evaluator" : p));
console.log(`${n} eval images, noise seed ${values.seed ?? 1}; FD / accuracy per extractor, then pixel-PCA FD`);
console.log(`| samples | ${names.map((x) => `${x} FD / acc`).join(" | ")} | pixel FD |`);
console.log(`|---|${names.map(() => "---|").join("")}---|`);
async function row(label: string, latents: Float32Array) {
  const pixels = await pipe.decode(latents);
  const cells: string[] = [];
  for (const [i, e] of evaluators.entries()) {
    const s = await e.statistics(pixels);
    cells.push(`${s.frechetDistance(realStats[i]).toFixed(2)} / ${s.accuracy(labels).toFixed(3)}`);
  }
  const pc = project(pixels);
  console.log(`| ${label} | ${cells.join(" | ")} | ${frechetDistance(pc.mean, pc.cov, realPcs.mean, realPcs.cov).toFixed(2)} |`);
}
await row("teacher, 16 steps", await pipe.sampleTeacher(prompts, { steps: 16, guidance: TEACHER_GUIDANCE, k: foldIn(k, 0), schedule: TEACHER_GUIDANCE_SCHEDULE }));
const cond = await pipe.conditions(prompts);
const w = { data: new Float32Array(n).fill(TEACHER_GUIDANCE), shape: [n, 1] };
const dc = pipe.teacher.dit;
for (const run of runs) {
  const cfg = configOf(openRun(run).config, "stack");
  const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
  const { params } = loadParams(join(run, "student.safetensors"), like);
  tree.dispose(like);
  for (const steps of [1, 2, 4]) {
    await row(`${run}, ${steps} step${steps > 1 ? "s" : ""}`, await studentSampleLatents("onnx", ditStudent(dc), params, steps, noise, cond, w, foldIn(k, 2), cfg.eval));
  }
  tree.dispose(params);
}
for (const e of evaluators) await e.dispose();
await pipe.dispose();
