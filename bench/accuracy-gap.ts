/**
 * Where a stack student's prompt accuracy goes (issue #13): the teacher (16 Euler steps, its
 * default schedule) and the student at 1 and 2 steps on the same eval prompts and starting noises,
 * image for image (`--prompts FILE`: other prompts than the eval ones, e.g. the training ones). Prints per-class accuracy, how often the student draws the garment the teacher
 * drew from the same noise, and, for the images the teacher gets right and the student does not,
 * the class the student drew instead and the latent error to the teacher's sample.
 *
 *   npx tsx bench/accuracy-gap.ts runs/fmnist-tbcm [--samples 1000] [--seed 1] [--mid 0.7] [--eta 0.9] [--prompts prompts/eval.txt]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { StackPipeline } from "../src/stack/pipeline.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { evalPrompts, EVAL_PROMPTS, TEACHER_GUIDANCE, TEACHER_GUIDANCE_SCHEDULE } from "../src/stack/teacherReport.ts";
import { initDit, withStudentHeads } from "../src/models/dit.ts";
import { loadParams } from "../src/numerics/params.ts";
import { ditStudent } from "../src/stack/student.ts";
import { studentSampleLatents } from "../src/eval/studentSamples.ts";
import { configOf } from "../src/config/schema.ts";
import { openRun } from "../src/run/open.ts";
import { CLASS_NAMES } from "../src/data/captions.ts";
import { writeImagePanels } from "../src/data/png.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" }, mid: { type: "string" }, eta: { type: "string" }, prompts: { type: "string" }, png: { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const n = Number(values.samples ?? 1000), mid = Number(values.mid ?? 0.7), eta = Number(values.eta ?? 0.9);
const config = configOf(openRun(run).config, "stack");
const pipe = StackPipeline.load({ teacher: config.teacher.model, vae: config.teacher.vae });
const evaluator = await Evaluator.load(config.teacher.evaluator, "onnx");
const { prompts, labels } = evalPrompts(values.prompts ?? EVAL_PROMPTS, n);
const k = foldIn(key(Number(values.seed ?? 1)), 77);
const dc = pipe.teacher.dit, d = pipe.latentDim;
const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
const { params } = loadParams(join(run, "student.safetensors"), like);
tree.dispose(like);

// the teacher from the same starting noise as the student (normal(foldIn(k, 0)))
const teacher = await pipe.sampleTeacher(prompts, { steps: 16, guidance: TEACHER_GUIDANCE, k: foldIn(k, 0), schedule: TEACHER_GUIDANCE_SCHEDULE });
const cond = await pipe.conditions(prompts);
const w = { data: new Float32Array(n).fill(TEACHER_GUIDANCE), shape: [n, 1] };
// the product's sampler (as `tbcm eval` draws): first noise normal(foldIn(k, 0)), re-noisings from k
const student = (steps: number) => studentSampleLatents("onnx", ditStudent(dc), params, steps, normal(foldIn(k, 0), n * d), cond, w, k, { twoStepMid: mid, eta, multiStep: "tail" });
const sets = { teacher, "1 step": await student(1), "2 steps": await student(2) };
const preds: Record<string, Int32Array> = {};
const pixels: Record<string, Float32Array> = {};
for (const [name, lat] of Object.entries(sets)) {
  pixels[name] = await pipe.decode(lat);
  preds[name] = (await evaluator.statistics(pixels[name])).predictions;
}
const K = CLASS_NAMES.length;
const name = (c: number) => CLASS_NAMES[c][0];
const acc = (p: Int32Array, c?: number) => {
  let hit = 0, all = 0;
  for (let i = 0; i < n; i++) if (c === undefined || labels[i] === c) { all++; if (p[i] === labels[i]) hit++; }
  return hit / Math.max(1, all);
};
console.log(`${run}: ${n} images of ${values.prompts ?? EVAL_PROMPTS}, noise seed ${values.seed ?? 1}, 2 steps at ${mid}, η ${eta}\n`);
console.log(`| class | teacher | 1 step | 2 steps |\n|---|---|---|---|`);
for (let c = 0; c < K; c++) console.log(`| ${name(c)} | ${acc(preds.teacher, c).toFixed(3)} | ${acc(preds["1 step"], c).toFixed(3)} | ${acc(preds["2 steps"], c).toFixed(3)} |`);
console.log(`| all | ${acc(preds.teacher).toFixed(3)} | ${acc(preds["1 step"]).toFixed(3)} | ${acc(preds["2 steps"]).toFixed(3)} |\n`);
const err = (a: Float32Array, i: number) => {
  let s = 0, r = 0;
  for (let j = 0; j < d; j++) { s += (a[i * d + j] - teacher[i * d + j]) ** 2; r += teacher[i * d + j] ** 2; }
  return s / r;
};
for (const which of ["1 step", "2 steps"]) {
  const p = preds[which], lat = sets[which as "1 step"];
  let same = 0, lost = 0, won = 0;
  const lostTo = new Map<string, number>();
  const errs = { same: [] as number[], lost: [] as number[], won: [] as number[] };
  for (let i = 0; i < n; i++) {
    const tRight = preds.teacher[i] === labels[i], sRight = p[i] === labels[i];
    if (p[i] === preds.teacher[i]) same++;
    if (tRight && !sRight) { lost++; const key = `${name(labels[i])} → ${name(p[i])}`; lostTo.set(key, (lostTo.get(key) ?? 0) + 1); errs.lost.push(err(lat, i)); }
    else if (!tRight && sRight) { won++; errs.won.push(err(lat, i)); }
    else errs.same.push(err(lat, i));
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  console.log(`${which}: draws the teacher's class ${(same / n).toFixed(3)}; right where the teacher is wrong ${won}, wrong where it is right ${lost}`);
  console.log(`  relative latent error to the teacher's sample: lost ${mean(errs.lost).toFixed(3)}, won ${mean(errs.won).toFixed(3)}, rest ${mean(errs.same).toFixed(3)}`);
  console.log(`  lost to: ${[...lostTo].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k2, v]) => `${k2} ${v}`).join(", ")}\n`);
}
// `--png FILE`: the first 32 images the 1-step student loses (teacher | 1 step | 2 steps, one panel each)
if (values.png) {
  const lost = [...labels.keys()].filter((i) => preds.teacher[i] === labels[i] && preds["1 step"][i] !== labels[i]).slice(0, 32);
  const P = 784, pick = (a: Float32Array) => { const o = new Float32Array(lost.length * P); lost.forEach((i, r) => o.set(a.subarray(i * P, (i + 1) * P), r * P)); return o; };
  writeImagePanels(values.png, [pick(pixels.teacher), pick(pixels["1 step"]), pick(pixels["2 steps"])], { rows: 4, cols: 8, height: 28, width: 28, zoom: 3 });
  console.log(`${values.png}: ${lost.map((i) => `${name(labels[i])}→${name(preds["1 step"][i])}`).join(", ")}`);
}
tree.dispose(params);
await evaluator.dispose();
await pipe.dispose();
