/**
 * The student's multi-step sampler (bench/RESULTS.md §13): FD and prompt accuracy of a distilled
 * stack student on the eval prompts for each timestep list, optionally with one guidance scale
 * per step. Noises are drawn from a key other than the run's evaluation (`--seed`), so a choice
 * made here is not fitted to the noises `tbcm eval` reports on.
 *
 *   npx tsx bench/student-sampler-sweep.ts runs/fmnist-tbcm '[[1.5708,0],[1.5708,1.3,0],[1.5708,1.4,1.2,1.0,0]]'
 *     [--guidance '[[4.5],[4.5],[4,4.5,4.5,5]]'] [--eta 1,0.5,0] [--student-cfg 0,0/-0.5] [--samples 1000] [--seed 1]
 *     [--first STUDENT.safetensors] [--teacher]
 *
 * `--eta`: the re-noising share of fresh noise of `scmStep` (1: the spec's sampler). Each schedule
 * with more than one step runs at each η. An entry `0.9/1` gives one η per re-noising (the last
 * repeats): 0.9 at the first, 1 at the rest. `--first`: another student file takes the first step
 * (from pure noise), the run's student the later ones (RESULTS §32: an averaged student's layout, a
 * single run's detail). `--student-cfg`: the student's own classifier-free guidance per step, the
 * same format as η: `F(c) + γ·(F(c) − F(∅))` with the empty prompt ∅ (one pass of 2B rows; 0 is the
 * plain student, γ < 0 guides less). `--teacher`: the teacher at 16 steps on the same starting
 * noises, and each row's ratios to it.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { numpy as np, tree } from "@jax-js/jax";
import { StackPipeline } from "../src/stack/pipeline.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { referenceStatistics, evalPrompts, EVAL_PROMPTS, TEACHER_GUIDANCE, TEACHER_GUIDANCE_SCHEDULE } from "../src/stack/teacherReport.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { initDit, withStudentHeads } from "../src/models/dit.ts";
import { loadParams } from "../src/numerics/params.ts";
import { ditStudent } from "../src/stack/student.ts";
import { scmStep, studentAsVelocity, checkTimesteps } from "../src/method/sampler.ts";
import { teacherCfgVelocity, type TrigVelocity } from "../src/method/guidance.ts";
import { SIGMA_D } from "../src/config/defaults.ts";
import { configOf } from "../src/config/schema.ts";
import { openRun } from "../src/run/open.ts";
import type { HostTensor } from "../src/executor/onnxRun.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" }, guidance: { type: "string" }, eta: { type: "string" }, first: { type: "string" }, "student-cfg": { type: "string" }, teacher: { type: "boolean" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const schedules: number[][] = JSON.parse(positionals[1] ?? "[[1.5707963,0],[1.5707963,1,0]]").map((ts: number[]) => ts.map((t, i) => (i === 0 ? Math.PI / 2 : t)));
const guidances: number[][] = values.guidance ? JSON.parse(values.guidance) : schedules.map((ts) => ts.slice(1).map(() => 4.5));
const etas = (values.eta ?? "1").split(",").map((e) => e.split("/").map(Number));
const etaAt = (eta: number[], i: number) => eta[Math.min(i, eta.length - 1)];
// `--student-cfg 0/0.3,0.5`: the student's own classifier-free guidance per step (the last repeats),
// F = F(c) + γ·(F(c) − F(∅)) with the empty prompt ∅; 0 is the plain student
const gammas = (values["student-cfg"] ?? "0").split(",").map((e) => e.split("/").map(Number));
const n = Number(values.samples ?? 1000);
// every input is checked before the models load: a bad list is a one-line error, not a trace mid-run
try {
  for (const [j, ts] of schedules.entries()) {
    checkTimesteps(ts);
    if (guidances[j]?.length !== ts.length - 1) throw new Error(`schedule ${j}: ${ts.length - 1} steps need as many guidance scales, got ${guidances[j]?.length ?? 0}`);
  }
  if (!(Number.isInteger(n) && n >= 2) || etas.flat().some((e) => !(e >= 0 && e <= 1))) throw new Error("--samples must be an integer ≥ 2 and every η in [0, 1]");
} catch (e) {
  console.error(`student-sampler-sweep: ${(e as Error).message} (each list runs from π/2 to 0, e.g. '[[1.5708,0],[1.5708,0.7,0]]')`);
  process.exit(2);
}
const config = configOf(openRun(run).config, "stack");
const pipe = StackPipeline.load({ teacher: config.teacher.model, vae: config.teacher.vae });
const evaluator = await Evaluator.load(config.teacher.evaluator, "onnx");
const { test, floor } = await referenceStatistics("", 0, evaluator, n);
const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const k = foldIn(key(Number(values.seed ?? 1)), 77);
const dc = pipe.teacher.dit;
const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
const { params } = loadParams(join(run, "student.safetensors"), like);
// `--first FILE`: another student file for the first step (from pure noise) only; the run's student takes the rest
const firstParams = values.first ? loadParams(values.first, like).params : params;
tree.dispose(like);

/** One student step from angle s to t (TrigFlow scale), re-noising with share η (the product's `scmStep`). */
const stepProgram = (weights: typeof params, s: number, t: number, eta: number, gamma: number) => inference("onnx", weights, (p, x, cond, uncond, w, noise) => {
  let next: ReturnType<typeof scmStep>;
  if (gamma === 0) {
    uncond.dispose();
    next = scmStep(studentAsVelocity(ditStudent(dc), p, w), x, s, t, cond, noise, eta);
    w.dispose();
  } else {
    // F(c) + γ·(F(c) − F(∅)) is classifier-free guidance at scale 1 + γ: the teacher's combination
    // (one pass of 2B rows), here on the student's velocity at the row's own scale column
    const w2 = np.concatenate([w.ref, w], 0);
    const both = studentAsVelocity(ditStudent(dc), p, w2);
    const guided: TrigVelocity = (u, tt, c) => teacherCfgVelocity(both, u.mul(SIGMA_D), tt, c, uncond, np.full([1, 1], 1 + gamma)).div(SIGMA_D);
    next = scmStep(guided, x, s, t, cond, noise, eta);
    w2.dispose();
  }
  tree.dispose(p);
  return next;
}, `sweep_step_${s}_${t}_${eta}_${gamma}`);
const cond = await pipe.conditions(prompts);
const uncond = await pipe.conditions(prompts.map(() => ""));
const d = pipe.latentDim;
const col = (v: number): HostTensor => ({ data: new Float32Array(n).fill(v), shape: [n, 1] });

console.log(`student ${run}${values.first ? ` (first step: ${values.first})` : ""}, ${n} images on the eval prompts (noise seed ${values.seed ?? 1}); FD floor ${floor.toFixed(3)}`);
// `--teacher`: the teacher at 16 steps (its default schedule) from the same starting noises, and every row's ratios to it
const ref = values.teacher
  ? await (async () => {
    const stats = await evaluator.statistics(await pipe.decode(await pipe.sampleTeacher(prompts, { steps: 16, guidance: TEACHER_GUIDANCE, k: foldIn(k, 0), schedule: TEACHER_GUIDANCE_SCHEDULE })));
    return { fd: stats.frechetDistance(test), accuracy: stats.accuracy(labels) };
  })()
  : undefined;
const ratios = (fd: number, accuracy: number) => (ref ? ` ${(fd / ref.fd).toFixed(3)} / ${(accuracy / ref.accuracy).toFixed(3)} |` : "");
console.log(`| steps | timesteps | guidance per step | η | student CFG γ | FD | FD / floor | prompt accuracy |${ref ? " FD / accuracy ratio to the teacher |" : ""}`);
console.log(`|---|---|---|---|---|---|---|---|${ref ? "---|" : ""}`);
if (ref) console.log(`| teacher, 16 steps | | ${TEACHER_GUIDANCE} | | | ${ref.fd.toFixed(2)} | ${(ref.fd / floor).toFixed(2)} | ${ref.accuracy.toFixed(3)} | 1 / 1 |`);
// the first step (from pure noise) is shared by every row with the same first angle, η and γ: run once
// (a 4,000-image sweep redid it in every row); rows that differ only in dials a 1-step list never uses run once
const firstSteps = new Map<string, Float32Array>();
const rowsDone = new Set<string>();
for (const [j, ts] of schedules.entries()) for (const eta of ts.length > 2 ? etas : [[1]]) for (const gamma of gammas) {
  const ws = guidances[j];
  const used = (dial: number[]) => ts.slice(1).map((_, i) => etaAt(dial, i)).join("/");
  const row = `${ts.join(",")}|${ws.join(",")}|${used(eta)}|${used(gamma)}`;
  if (rowsDone.has(row)) continue;
  rowsDone.add(row);
  // every row starts from the same noises and re-noises with the same draws (as `tbcm eval` does since
  // RESULTS §29), so rows of different step counts are compared image for image
  let x: Float32Array = normal(foldIn(k, 0), n * d).map((v) => v * SIGMA_D);
  for (let i = 0; i + 1 < ts.length; i++) {
    const etaHere = ts[i + 1] === 0 ? 1 : etaAt(eta, i);
    const first = i === 0 ? `${ts[1]}|${etaHere}|${etaAt(gamma, 0)}|${ws[0]}` : undefined;
    const cached = first === undefined ? undefined : firstSteps.get(first);
    if (cached) {
      x = cached;
      continue;
    }
    const program = stepProgram(i === 0 ? firstParams : params, ts[i], ts[i + 1], etaHere, etaAt(gamma, i));
    const fresh = ts[i + 1] === 0 ? new Float32Array(n * d) : normal(foldIn(k, i + 1), n * d);
    [{ data: x }] = await inChunks(program, [{ data: x, shape: [n, d] }, cond, uncond, col(ws[i]), { data: fresh, shape: [n, d] }], n, Math.min(n, 250));
    await program.dispose();
    if (first !== undefined) firstSteps.set(first, x);
  }
  const stats = await evaluator.statistics(await pipe.decode(x.map((v) => v / SIGMA_D)));
  const fd = stats.frechetDistance(test), accuracy = stats.accuracy(labels);
  console.log(`| ${ts.length - 1} | ${ts.map((t) => t.toFixed(3)).join(", ")} | ${ws.join(", ")} | ${eta.join("/")} | ${gamma.join("/")} | ${fd.toFixed(2)} | ${(fd / floor).toFixed(2)} | ${accuracy.toFixed(3)} |${ratios(fd, accuracy)}`);
}
tree.dispose(params);
if (firstParams !== params) tree.dispose(firstParams);
await evaluator.dispose();
await pipe.dispose();
