/**
 * Where the 1-step student's blocky artefacts come from (bench/RESULTS.md §21), without training:
 * the VAE decodes each of the 7×7 latent tokens into its own 4×4-pixel patch, so an error that
 * differs from token to token shows as a step at the patch borders. For the same prompts and
 * noises, the 1-step student's latents vs the teacher's ODE endpoint (32 flow-Euler steps, the
 * run's guidance schedule), decoded with the VAE, against real test images:
 *   1. per latent position: RMS of the student's error and its size relative to the teacher's
 *      sample-to-sample spread there;
 *   2. latent roughness: E(z_p − z_q)² over neighbouring tokens / 2·E(z_p − z̄)² (z̄: the sample's
 *      mean over tokens, per channel) — 1 for spatially white latents, ≪ 1 for smooth ones;
 *   3. pixels: mean |difference| of neighbouring pixels across 4-pixel patch borders over that
 *      within patches (1 = no patch structure; "edge ratio"), for real images, their VAE
 *      reconstructions, teacher, student, and the teacher's latents perturbed by (a) the
 *      student's own error, paired with another sample's teacher latent, (b) white Gaussian
 *      noise of the error's per-coordinate variance, (c) the same noise smoothed over the token
 *      grid to the student error's roughness;
 *   4. the student's pixel error |x_student − x_teacher| by position within a 4×4 patch;
 *   5. how much of the latent error is the starting noise passed through: the error regressed on
 *      the noise at the same coordinate (a pass-through e = α·σ_d·z gives R² → 1), and, as a
 *      control, on the noise of the neighbouring token;
 *   6. the evaluator's prompt accuracy of each image set of 3: whether the student's error costs
 *      accuracy because of what it is (class-relevant) or because of its size (the perturbed
 *      teacher latents).
 *
 *   npx tsx bench/patch-artefacts.ts [run dir, default /work/base/scratch/fmnist] [--samples 500] [--seed 1]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { loadTeacher, loadVae } from "../src/stack/load.ts";
import { textEncoderProgram, encodeConditions, guidedEulerStep, eulerEndpoint } from "../src/stack/pipeline.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { initDit, withStudentHeads } from "../src/models/dit.ts";
import { vaeEncode, vaeDecode } from "../src/models/vae.ts";
import { loadParams } from "../src/numerics/params.ts";
import { ditStudent } from "../src/stack/student.ts";
import { studentSampleLatents } from "../src/eval/studentSamples.ts";
import { evalPrompts, EVAL_PROMPTS } from "../src/stack/teacherReport.ts";
import { loadSplit } from "../src/stack/common.ts";
import { key, foldIn, normal, uniform } from "../src/numerics/random.ts";
import { configOf, guidanceSchedule } from "../src/config/schema.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { openRun } from "../src/run/open.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "/work/base/scratch/fmnist";
const n = Number(values.samples ?? 500);
const k = foldIn(key(Number(values.seed ?? 1)), 77);
// the run's own teacher, VAE, guidance schedule and evaluation scale (its config.json)
const config = configOf(openRun(run).config, "stack");
const schedule = guidanceSchedule(config);
const guidance = config.eval.guidance;

const files = config.teacher; // a run may decode with another VAE file than the shipped one
const teacher = loadTeacher(files.model);
const vae = loadVae(files.vae);
const d = teacher.latentDim, C = vae.config.latentChannels, G = vae.config.imageSize / vae.config.patch, P = vae.config.patch, S = vae.config.imageSize;
const dc = teacher.dit;
const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
const { params } = loadParams(join(run, "student.safetensors"), like);
tree.dispose(like);

const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const text = textEncoderProgram(teacher, "onnx");
const cond = await encodeConditions(text, teacher, prompts), uncond = await encodeConditions(text, teacher, prompts.map(() => ""));
await text.dispose();
const w = { data: new Float32Array(n).fill(guidance), shape: [n, 1] };
const noise = normal(foldIn(k, 1), n * d);
const student = await studentSampleLatents("onnx", ditStudent(dc), params, 1, noise, cond, w, foldIn(k, 2), { twoStepMid: 1, eta: 1, multiStep: "shifted" });
const euler = guidedEulerStep(teacher, "onnx");
const ode = await eulerEndpoint(euler, noise, cond, uncond, w, 32, { schedule });
await euler.dispose();

// real test images of the same classes, encoded (mean) and reconstructed
const testSet = loadSplit("", "test");
const byClass: number[][] = Array.from({ length: 10 }, () => []);
for (let i = 0; i < testSet.count; i++) byClass[testSet.labels[i]].push(i);
const pick = uniform(foldIn(k, 3), n);
const real = new Float32Array(n * S * S);
labels.forEach((c, r) => {
  const pool = byClass[c], i = pool[Math.floor(pick[r] * pool.length)];
  for (let j = 0; j < S * S; j++) real[r * S * S + j] = testSet.images[i * S * S + j] / 255;
});
const encode = inference("onnx", vae.params, (p, x) => vaeEncode(p, vae.config, x)[0].mul(vae.scale), "vae_encode");
const [{ data: realLatent }] = await inChunks(encode, [{ data: real, shape: [n, S * S] }], n, Math.min(n, 500));
await encode.dispose();
const decoder = inference("onnx", vae.params, (p, z) => vaeDecode(p, vae.config, z.div(vae.scale)), "vae_decode");
const decode = async (z: Float32Array) => (await inChunks(decoder, [{ data: z, shape: [n, d] }], n, Math.min(n, 500)))[0].data.map((v) => Math.min(1, Math.max(0, v)));

// latents are token-major: index (token·C + channel), token = row·G + col
const at = (z: Float32Array, b: number, tok: number, c: number) => z[b * d + tok * C + c];
const error = student.map((v, i) => v - ode[i]);

/** Latent roughness: neighbour-difference energy over twice the energy about the sample's token mean. */
function roughness(z: Float32Array): number {
  let diff = 0, pairs = 0, spread = 0, cells = 0;
  for (let b = 0; b < n; b++) for (let c = 0; c < C; c++) {
    let mean = 0;
    for (let tok = 0; tok < G * G; tok++) mean += at(z, b, tok, c);
    mean /= G * G;
    for (let tok = 0; tok < G * G; tok++) { spread += (at(z, b, tok, c) - mean) ** 2; cells++; }
    for (let r = 0; r < G; r++) for (let q = 0; q < G; q++) {
      if (q + 1 < G) { diff += (at(z, b, r * G + q, c) - at(z, b, r * G + q + 1, c)) ** 2; pairs++; }
      if (r + 1 < G) { diff += (at(z, b, r * G + q, c) - at(z, b, (r + 1) * G + q, c)) ** 2; pairs++; }
    }
  }
  return diff / pairs / (2 * spread / cells);
}

/** Mean |neighbour difference| across patch borders over that within patches (both directions). */
function edgeRatio(x: Float32Array): { ratio: number; border: number; within: number } {
  let border = 0, nb = 0, within = 0, nw = 0;
  for (let b = 0; b < n; b++) for (let r = 0; r < S; r++) for (let c = 0; c + 1 < S; c++) {
    const h = Math.abs(x[b * S * S + r * S + c] - x[b * S * S + r * S + c + 1]);
    const v = Math.abs(x[b * S * S + c * S + r] - x[b * S * S + (c + 1) * S + r]);
    if ((c + 1) % P === 0) { border += h + v; nb += 2; } else { within += h + v; nw += 2; }
  }
  return { ratio: (border / nb) / (within / nw), border: border / nb, within: within / nw };
}

/** Gaussian noise with per-coordinate std `std` [d], optionally smoothed over the token grid (3×3 box, `mix` of it) and rescaled to the same variance. */
function gaussianLike(std: Float64Array, kk: number, mix: number): Float32Array {
  const z = normal(kk, n * d);
  if (mix === 0) return z.map((v, i) => v * std[i % d]);
  const out = new Float32Array(n * d);
  for (let b = 0; b < n; b++) for (let c = 0; c < C; c++) for (let r = 0; r < G; r++) for (let q = 0; q < G; q++) {
    let s = 0, cnt = 0;
    for (let dr = -1; dr <= 1; dr++) for (let dq = -1; dq <= 1; dq++) {
      const rr = r + dr, qq = q + dq;
      if (rr >= 0 && rr < G && qq >= 0 && qq < G) { s += at(z, b, rr * G + qq, c); cnt++; }
    }
    const own = at(z, b, r * G + q, c);
    // smoothed and rescaled to unit variance: (1−mix)·own + mix·box mean, box mean of cnt draws has variance 1/cnt
    const a = 1 - mix, bb = mix / cnt;
    const mixed = a * own + bb * s; // own is inside the box: variance (a + bb)² + (cnt − 1)·bb²
    out[b * d + (r * G + q) * C + c] = mixed / Math.sqrt((a + bb) ** 2 + (cnt - 1) * bb * bb) * std[(r * G + q) * C + c];
  }
  return out;
}

const errStd = new Float64Array(d);
for (let i = 0; i < n * d; i++) errStd[i % d] += error[i] ** 2 / n;
for (let j = 0; j < d; j++) errStd[j] = Math.sqrt(errStd[j]);
// the smoothing share that gives white noise the student error's roughness (bisection; roughness falls with mix)
const target = roughness(error);
let lo = 0, hi = 1;
for (let it = 0; it < 12; it++) { const mid = (lo + hi) / 2; if (roughness(gaussianLike(errStd, foldIn(k, 9), mid)) > target) lo = mid; else hi = mid; }
const mix = (lo + hi) / 2;
const shifted = new Float32Array(n * d); // the student's error of sample b on the teacher latent of sample b+1
for (let b = 0; b < n; b++) for (let j = 0; j < d; j++) shifted[b * d + j] = ode[b * d + j] + error[((b + 1) % n) * d + j];
const white = gaussianLike(errStd, foldIn(k, 4), 0), smooth = gaussianLike(errStd, foldIn(k, 5), mix);

const px = {
  real,
  "real, VAE reconstruction": await decode(realLatent),
  "teacher ODE endpoint (32 steps)": await decode(ode),
  "student, 1 step": await decode(student),
  "teacher + student error of another sample": await decode(shifted),
  "teacher + white noise, the error's variance": await decode(ode.map((v, i) => v + white[i])),
  [`teacher + smoothed noise (error's variance and roughness, mix ${mix.toFixed(2)})`]: await decode(ode.map((v, i) => v + smooth[i])),
};
await decoder.dispose();

let rel = 0, energy = 0;
for (let i = 0; i < n * d; i++) { rel += error[i] ** 2; energy += ode[i] ** 2; }
console.log(`run ${run}: ${n} eval prompts, CFG ${guidance}, guidance interval [${schedule.interval.join(", ")}] ramp ${schedule.ramp}; `
  + `student 1 step vs the teacher's ODE endpoint from the same noise: relative MSE ${(rel / energy).toFixed(3)}`);

console.log("\n1. student's latent error by token (rows × cols of the 7×7 grid): RMS over samples and channels / teacher's sample-to-sample std there");
const tokStats = (tok: number) => {
  let e2 = 0, mean = new Float64Array(C), v2 = 0;
  for (let b = 0; b < n; b++) for (let c = 0; c < C; c++) { e2 += (at(student, b, tok, c) - at(ode, b, tok, c)) ** 2; mean[c] += at(ode, b, tok, c) / n; }
  for (let b = 0; b < n; b++) for (let c = 0; c < C; c++) v2 += (at(ode, b, tok, c) - mean[c]) ** 2;
  return { rms: Math.sqrt(e2 / (n * C)), spread: Math.sqrt(v2 / (n * C)) };
};
console.log("| row | " + Array.from({ length: G }, (_, q) => `col ${q}`).join(" | ") + " |");
console.log("|---|" + "---|".repeat(G));
for (let r = 0; r < G; r++) console.log(`| ${r} | ` + Array.from({ length: G }, (_, q) => { const s = tokStats(r * G + q); return `${s.rms.toFixed(2)} / ${s.spread.toFixed(2)}`; }).join(" | ") + " |");

console.log("\n2. latent roughness (1 = spatially white, ≪ 1 = smooth over the token grid)");
console.log("| latents | roughness |\n|---|---|");
for (const [name, z] of [["real test images, VAE encoder mean", realLatent], ["teacher ODE endpoint", ode], ["student, 1 step", student], ["student − teacher (the error)", error]] as const) {
  console.log(`| ${name} | ${roughness(z).toFixed(3)} |`);
}

console.log("\n3. pixel edge ratio at the 4-pixel patch borders");
console.log("| images | mean |Δ| across borders | within patches | ratio |\n|---|---|---|---|");
for (const [name, x] of Object.entries(px)) {
  const e = edgeRatio(x);
  console.log(`| ${name} | ${e.border.toFixed(4)} | ${e.within.toFixed(4)} | ${e.ratio.toFixed(3)} |`);
}

console.log("\n4. student's pixel error |x_student − x_teacher| by position within the 4×4 patch (mean over images and patches)");
const studentPx = px["student, 1 step"], teacherPx = px["teacher ODE endpoint (32 steps)"];
const within = new Float64Array(P * P);
for (let b = 0; b < n; b++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
  within[(y % P) * P + (x % P)] += Math.abs(studentPx[b * S * S + y * S + x] - teacherPx[b * S * S + y * S + x]) / (n * G * G);
}
console.log("| y \\ x | 0 | 1 | 2 | 3 |\n|---|---|---|---|---|");
for (let y = 0; y < P; y++) console.log(`| ${y} | ` + Array.from({ length: P }, (_, x) => within[y * P + x].toFixed(4)).join(" | ") + " |");

console.log("\n5. the latent error regressed on the starting noise (x = σ_d·z at t = π/2): share of the error's energy it explains");
const regress = (shift: number) => {
  let ez = 0, zz = 0, ee = 0;
  for (let b = 0; b < n; b++) for (let j = 0; j < d; j++) {
    const z = noise[b * d + ((j + shift) % d)], e = error[b * d + j];
    ez += e * z; zz += z * z; ee += e * e;
  }
  return { alpha: ez / zz, r2: (ez * ez) / (zz * ee) };
};
console.log("| noise at | α (error per unit noise) | R² |\n|---|---|---|");
// latents are token-major with C channels per token; shifting by C is the next token, same channel
for (const [name, shift] of [["the same coordinate", 0], ["the next token, same channel (control)", C]] as const) {
  const r = regress(shift);
  console.log(`| ${name} | ${r.alpha.toFixed(4)} | ${r.r2.toFixed(4)} |`);
}

// Does the student's error cost prompt accuracy because it is class-relevant, or would any error of
// its size? The evaluator's accuracy of each image set above, for the classes asked for.
console.log("\n6. prompt accuracy (evaluator argmax = class asked for) of each image set");
const evaluator = await Evaluator.load(files.evaluator, "onnx");
console.log("| images | accuracy |\n|---|---|");
for (const [name, x] of Object.entries(px)) console.log(`| ${name} | ${(await evaluator.statistics(x)).accuracy(labels).toFixed(3)} |`);
await evaluator.dispose();
tree.dispose([params, teacher.params as never, vae.params as never]);
