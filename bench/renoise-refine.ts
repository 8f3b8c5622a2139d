/**
 * What one student step does to a finished sample: re-noise it to angle t with fresh noise (η = 1)
 * and map it back to 0 with the student, or with the teacher's guided ODE (16 Euler steps from t) for
 * reference. Sources: the teacher's 32-step ODE endpoint and the student's own 1-step sample, from the
 * same noises. An exact consistency model of the teacher gives the teacher's column; the gap between
 * the two is the student's error on the states a multi-step sampler visits.
 *
 * With `--ideal '<lists>'` it instead runs the student's multi-step sampler (`scmStep`'s rule,
 * re-noising share η) with the teacher's ODE in place of the student: the sampler an exact student
 * would give, for each angle list after π/2 and each `--eta`.
 *
 *   npx tsx bench/renoise-refine.ts runs/fmnist-tbcm [--samples 1000] [--seed 1] [--angles 0.1,0.2,0.35,0.5,0.7]
 *   npx tsx bench/renoise-refine.ts runs/fmnist-tbcm --ideal '[[0],[0.7,0],[0.7,0.467,0.233,0]]' --eta 1,0.9 [--later-guidance 1,2.5,4.5]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { StackPipeline, guidedEulerStep, eulerEndpoint } from "../src/stack/pipeline.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { referenceStatistics, evalPrompts, EVAL_PROMPTS } from "../src/stack/teacherReport.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { initDit, withStudentHeads } from "../src/models/dit.ts";
import { loadParams } from "../src/numerics/params.ts";
import { ditStudent } from "../src/stack/student.ts";
import { scmStep, studentAsVelocity } from "../src/method/sampler.ts";
import { studentSampleLatents } from "../src/eval/studentSamples.ts";
import { SIGMA_D } from "../src/config/defaults.ts";
import { configOf, guidanceSchedule } from "../src/config/schema.ts";
import { openRun } from "../src/run/open.ts";
import type { HostTensor } from "../src/executor/onnxRun.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" }, angles: { type: "string" }, ideal: { type: "string" }, eta: { type: "string" }, "later-guidance": { type: "string" } }, allowPositionals: true });
const run = positionals[0] ?? "runs/fmnist-tbcm";
const n = Number(values.samples ?? 1000);
const angles = (values.angles ?? "0.1,0.2,0.35,0.5,0.7").split(",").map(Number);
const config = configOf(openRun(run).config, "stack");
const schedule = guidanceSchedule(config);
const pipe = StackPipeline.load({ teacher: config.teacher.model, vae: config.teacher.vae });
const evaluator = await Evaluator.load(config.teacher.evaluator, "onnx");
const { test, floor } = await referenceStatistics("", 0, evaluator, n);
const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const k = foldIn(key(Number(values.seed ?? 1)), 78);
const dc = pipe.teacher.dit, d = pipe.latentDim;
const like = withStudentHeads(key(0), initDit(key(0), dc), dc);
const { params } = loadParams(join(run, "student.safetensors"), like);
tree.dispose(like);
const cond = await pipe.conditions(prompts), uncond = await pipe.conditions(prompts.map(() => ""));
const col = (v: number): HostTensor => ({ data: new Float32Array(n).fill(v), shape: [n, 1] });
const w = col(config.eval.guidance);

const noise = normal(foldIn(k, 0), n * d);
const euler = guidedEulerStep(pipe.teacher, "onnx");
const teacherSample = await eulerEndpoint(euler, noise, cond, uncond, w, 32, { schedule });
const studentSample = await studentSampleLatents("onnx", ditStudent(dc), params, 1, noise, cond, w, foldIn(k, 1), { twoStepMid: 1, eta: 1, multiStep: "shifted" });

/** The student from angle t to 0 (z units in and out). */
async function studentFrom(t: number, xt: Float32Array): Promise<Float32Array> {
  const program = inference("onnx", params, (p, x, c, ww, zero) => {
    const x0 = scmStep(studentAsVelocity(ditStudent(dc), p, ww), x.mul(SIGMA_D), t, 0, c, zero, 1);
    tree.dispose(p); ww.dispose();
    return x0.div(SIGMA_D);
  }, `refine_${t}`);
  const [{ data }] = await inChunks(program, [{ data: xt, shape: [n, d] }, cond, w, { data: new Float32Array(n * d), shape: [n, d] }], n, Math.min(n, 250));
  await program.dispose();
  return data;
}

/** The teacher's guided flow ODE from angle t (flow time s = sin t/(sin t + cos t)) to 0 in `steps` Euler steps. */
async function teacherFrom(t: number, xt: Float32Array, steps = 16, scale = w): Promise<Float32Array> {
  const flowState = xt.map((v) => v / (Math.sin(t) + Math.cos(t)));
  return eulerEndpoint(euler, flowState, cond, uncond, scale, steps, { schedule, from: Math.sin(t) / (Math.sin(t) + Math.cos(t)) });
}

const score = async (z: Float32Array) => {
  const stats = await evaluator.statistics(await pipe.decode(z));
  return `${stats.frechetDistance(test).toFixed(2)} / ${stats.accuracy(labels).toFixed(3)}`;
};
const relChange = (a: Float32Array, b: Float32Array) => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return (num / den).toFixed(4);
};

if (values.ideal) {
  // the sampler with an exact consistency function: x0 = the teacher's ODE endpoint from (x, s)
  const lists: number[][] = JSON.parse(values.ideal);
  console.log(`the student's sampler with the teacher's ODE as its consistency function; ${n} eval-prompt images (seed ${values.seed ?? 1}), FD floor ${floor.toFixed(2)}`);
  // `--later-guidance 1,2.5`: the guidance scale of every pass after the first (default: the run's)
  const laterScales = (values["later-guidance"] ?? String(config.eval.guidance)).split(",").map(Number);
  console.log("| steps | angles after π/2 | η | later guidance | FD / accuracy |");
  console.log("|---|---|---|---|---|");
  for (const list of lists) for (const eta of list.length > 1 ? (values.eta ?? "1").split(",").map(Number) : [1]) for (const later of list.length > 1 ? laterScales : [config.eval.guidance]) {
    let x: Float32Array = noise, s = Math.PI / 2, x0 = teacherSample;
    for (const [i, t] of list.entries()) {
      x0 = i === 0 ? teacherSample : await teacherFrom(s, x, 16, col(later));
      if (t === 0) break;
      const fresh = normal(foldIn(k, 100 + i), n * d);
      const prev = x, cs = Math.cos(s), ss = Math.sin(s);
      x = x0.map((v, j) => Math.cos(t) * v + Math.sin(t) * (eta * fresh[j] + Math.sqrt(1 - eta * eta) * (prev[j] - cs * v) / ss));
      s = t;
    }
    console.log(`| ${list.length} | ${list.join(", ")} | ${eta} | ${later} | ${await score(x0)} |`);
  }
} else {
  console.log(`student ${run}, ${n} eval-prompt images (seed ${values.seed ?? 1}); FD floor ${floor.toFixed(2)}; FD / accuracy, and relative change ‖out − sample‖²/‖sample‖²`);
  console.log(`teacher ODE endpoint (32 steps): ${await score(teacherSample)}; student 1 step: ${await score(studentSample)}`);
  console.log("| source | t | student from t | change | teacher ODE from t | change |");
  console.log("|---|---|---|---|---|---|");
  for (const [name, src] of [["teacher", teacherSample], ["student 1 step", studentSample]] as const) {
    for (const [i, t] of angles.entries()) {
      const fresh = normal(foldIn(k, 10 + i), n * d);
      const xt = src.map((v, j) => Math.cos(t) * v + Math.sin(t) * fresh[j]);
      const byStudent = await studentFrom(t, xt), byTeacher = await teacherFrom(t, xt);
      console.log(`| ${name} | ${t} | ${await score(byStudent)} | ${relChange(byStudent, src)} | ${await score(byTeacher)} | ${relChange(byTeacher, src)} |`);
    }
  }
}
tree.dispose(params);
await euler.dispose();
await evaluator.dispose();
await pipe.dispose();
