/**
 * Where and how strongly the shipped teacher is guided (bench/RESULTS.md §10): FD and prompt
 * accuracy of the teacher's flow-Euler samples on the eval prompts for each
 * [steps, w, s_lo, s_hi, φ] — guidance w at flow times s ∈ [s_lo, s_hi] (w = 1 elsewhere), and
 * guidance rescaling φ (the guided velocity rescaled per sample to the conditional one's
 * standard deviation, mixed with weight φ; not used by the product); an optional sixth entry is
 * the logistic edge width of `guidance_ramp`.
 *
 *   npx tsx bench/guidance-sweep.ts '[[16,4.5,0,1,0],[16,4.5,0,0.6,0],[16,4.5,0,1,0.7]]' [--samples 1000]
 */
import { parseArgs } from "node:util";
import { numpy as np, type Array } from "@jax-js/jax";
import { StackPipeline, flowTimesteps } from "../src/stack/pipeline.ts";
import { Evaluator } from "../src/eval/evaluator.ts";
import { referenceStatistics, evalPrompts, EVAL_PROMPTS } from "../src/stack/teacherReport.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { ditFlow } from "../src/models/dit.ts";
import { guidanceShare } from "../src/method/guidance.ts";
import type { HostTensor } from "../src/executor/onnxRun.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";

const { values, positionals } = parseArgs({ options: { samples: { type: "string" } }, allowPositionals: true });
const grid: [number, number, number, number, number, number?][] = JSON.parse(positionals[0] ?? "[[16,4.5,0,1,0],[16,4.5,0,0.6,0]]");
const n = Number(values.samples ?? 1000);
const pipe = StackPipeline.load({ teacher: "models/fmnist/teacher.safetensors", vae: "models/fmnist/vae.safetensors" });
const evaluator = await Evaluator.load("models/fmnist/evaluator.safetensors", "onnx");
const { test, floor } = await referenceStatistics("", 0, evaluator, n);
const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
const k = foldIn(key(0), 77); // the teacher report's noises
const teacher = pipe.teacher;

/** A guided Euler step whose guided velocity is rescaled: `φ·g·std(v_c)/std(g) + (1−φ)·g`. */
const step = inference("onnx", teacher.params.dit, (p, x, s, sNext, cond, uncond, w, phi) => {
  const [v, logvar] = ditFlow(p, teacher.dit, np.concatenate([x.ref, x.ref], 0), np.concatenate([s.ref, s.ref], 0), np.concatenate([cond, uncond], 0));
  logvar.dispose();
  const [vc, vu] = np.split(v, 2, 0);
  const g = vu.ref.add(w.mul(vc.ref.sub(vu)));
  const std = (a: Array) => {
    const c = a.ref.sub(np.mean(a, -1, { keepdims: true }));
    return np.sqrt(np.mean(c.ref.mul(c), -1, { keepdims: true }).add(1e-8));
  };
  const rescaled = g.ref.mul(std(vc).div(std(g.ref)));
  return x.add(rescaled.mul(phi.ref).add(g.mul(np.onesLike(phi.ref).sub(phi))).mul(sNext.sub(s)));
}, "guidance_sweep_step");
const cond = await pipe.conditions(prompts), uncond = await pipe.conditions(prompts.map(() => ""));
const d = pipe.latentDim;
const col = (v: number) => ({ data: new Float32Array(n).fill(v), shape: [n, 1] });

console.log(`teacher, flow Euler, ${n} images on the eval prompts; FD floor ${floor.toFixed(3)}`);
console.log("| steps | w | guided at flow times | φ | FD | FD / floor | prompt accuracy |");
console.log("|---|---|---|---|---|---|---|");
for (const [steps, w, lo, hi, phi, ramp = 0] of grid) {
  const times = flowTimesteps(steps, 1);
  let x: HostTensor = { data: normal(k, n * d), shape: [n, d] };
  for (let i = 0; i < steps; i++) {
    const guided = 1 + (w - 1) * guidanceShare(times[i], { interval: [lo, hi], ramp });
    [x] = await inChunks(step, [x, col(times[i]), col(times[i + 1]), cond, uncond, col(guided), col(phi)], n, Math.min(n, 250));
  }
  const stats = await evaluator.statistics(await pipe.decode(x.data));
  const fd = stats.frechetDistance(test);
  console.log(`| ${steps} | ${w} | ${ramp > 0 ? `ramp ${hi} ± ${ramp}` : `[${lo}, ${hi}]`} | ${phi} | ${fd.toFixed(2)} | ${(fd / floor).toFixed(2)} | ${stats.accuracy(labels).toFixed(3)} |`);
}
await step.dispose();
await evaluator.dispose();
await pipe.dispose();
