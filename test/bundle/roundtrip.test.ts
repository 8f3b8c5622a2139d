/**
 * The round trip of the bundle format (src/bundle/): the shipped teacher exported as a bundle
 * (`tbcm export-teacher`) and distilled through `teacher.kind: onnx` agrees with the native stack
 * path (`kind: stack`) on the same prompts and seed — the teacher velocity, the first step's
 * training pairs and the training losses of the first steps — and a short run through the bundle
 * writes its student, metrics and grids, and exports the student in the teacher's own contract.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { parseConfig, lrSchedule, type TbcmConfig } from "../../src/config/schema.ts";
import { openRun } from "../../src/run/open.ts";
import { evalKeys, drawPairs, distillPrograms, initialStudent, STREAM } from "../../src/train/distill.ts";
import { teacherKind } from "../../src/run/kinds.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { routeAngles } from "../../src/method/route.ts";
import { tangentRatio } from "../../src/method/loss.ts";
import { learningRate } from "../../src/train/schedule.ts";
import { makeOptimizer } from "../../src/train/optim.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";
import { toHost, type Tree } from "../../src/numerics/tree.ts";
import { exportTeacherBundle } from "../../src/bundle/exportTeacher.ts";
import { loadTeacher } from "../../src/stack/load.ts";
import { ditFlow } from "../../src/models/dit.ts";
import { tempDir } from "../tempDir.ts";
import type { TrigVelocity } from "../../src/method/guidance.ts";

const dir = tempDir("tbcm-bundle-");
const bundle = join(dir, "bundle");
const promptsFile = join(dir, "prompts.txt");
writeFileSync(promptsFile, "a photo of a sneaker\na bag\na photo of a dress\n");

function tinyConfig(kind: "stack" | "onnx", extra: Record<string, unknown> = {}): TbcmConfig {
  return parseConfig({
    method: "tbcm", seed: 5, prompts_file: promptsFile, executor: "onnx",
    teacher: kind === "onnx" ? { kind, dir: bundle } : { kind },
    route: { shift: 2.5, steps: 4 }, loss: { warmup: 2 },
    optim: { kind: "adamw", lr: 3e-4 },
    train: { steps: 3, prompts_per_step: 2, log_every: 1, eval_every: 3, checkpoint_every: 3 },
    // a bundle's guidance scales are its teacher.json's; the stack's are set to the same here
    eval: { samples: 4, curve_noises: 2 },
    ...(kind === "stack" ? { guidance: [4, 4.5, 5] } : {}),
    ...extra,
  });
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const maxOf = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

before(async () => {
  await exportTeacherBundle(bundle, { promptFiles: [promptsFile] });
});

/** The loop's first `n` steps (as `trainStudent` takes them): losses and the first step's pairs. */
async function firstSteps(config: TbcmConfig, n: number) {
  const kind = teacherKind(config.teacher.kind);
  const cfg = kind.resolveConfig?.(config) ?? config;
  const problem = await kind.problem(cfg, evalKeys(cfg.seed));
  const optimizer = makeOptimizer(cfg.optim);
  const params = initialStudent(problem, cfg);
  const state = optimizer.init(tree.flatten(params as Tree)[0] as never);
  const programs = distillPrograms(cfg, problem, optimizer, params, state);
  let weights = programs.initialWeights;
  const route = routeAngles(cfg.route.shift, cfg.route.steps);
  const losses: number[] = [];
  let pairs: Float32Array[] = [];
  for (let s = 0; s < n; s++) {
    const batch = await drawPairs(cfg, problem, foldIn(foldIn(key(cfg.seed), STREAM.step), s), route, programs.pairs);
    if (s === 0) pairs = [toHost(batch.xt), toHost(batch.dxdt)];
    const out = await programs.step(weights, batch, tangentRatio(s, cfg.loss), optimizer.hyper(s, learningRate(s, cfg.train.steps, cfg.optim.lr, lrSchedule(cfg.optim))));
    weights = out.weights;
    losses.push(out.stats[0]);
  }
  await programs.dispose();
  weights.dispose();
  return { problem, losses, pairs };
}

test("the bundle's teacher velocity, first pairs and first training losses equal the native stack's", async () => {
  const stack = await firstSteps(tinyConfig("stack"), 3);
  const onnx = await firstSteps(tinyConfig("onnx"), 3);
  // the TrigFlow teacher velocity on the same inputs
  const B = 3, d = 196;
  const u = normal(key(7), B * d), t = [0.2, 0.9, 1.5];
  const cond = onnx.problem.conditions([0, 1, -1]);
  const condStack = stack.problem.conditions([0, 1, -1]);
  assert.equal(maxAbs(toHost(cond), toHost(condStack)), 0, "the table's rows are the text encoder's conditions");
  const f = (p: typeof onnx.problem, c: typeof cond) => (p.teacher as TrigVelocity)(np.array(u).reshape([B, d]), np.array(Float32Array.from(t)).reshape([B, 1]), c).dataSync() as Float32Array;
  const fb = f(onnx.problem, cond), fs = f(stack.problem, condStack);
  const dv = maxAbs(fb, fs);
  assert.ok(dv < 1e-5 * Math.max(1, maxOf(fs)), `teacher velocity max |Δ| ${dv.toExponential(2)} (max |F| ${maxOf(fs).toFixed(2)})`);
  // the first step's training pairs (the teacher's trajectories through the pair pass)
  const dx = maxAbs(onnx.pairs[0], stack.pairs[0]), dd = maxAbs(onnx.pairs[1], stack.pairs[1]);
  assert.ok(dx < 1e-4 && dd < 1e-4 * maxOf(stack.pairs[1]), `pairs: max |Δxt| ${dx.toExponential(2)}, |Δdxdt| ${dd.toExponential(2)}`);
  const rel = onnx.losses.map((l, i) => Math.abs(l - stack.losses[i]) / Math.abs(stack.losses[i]));
  assert.ok(rel.every((r) => r <= 1e-4), `losses bundle ${onnx.losses} vs stack ${stack.losses}: relative ${rel.map((r) => r.toExponential(1))}`);
  console.log(`# teacher F max |Δ| ${dv.toExponential(2)}; pairs |Δxt| ${dx.toExponential(2)} |Δdxdt| ${dd.toExponential(2)}; losses ${onnx.losses.map((l) => l.toFixed(5))} vs ${stack.losses.map((l) => l.toFixed(5))}, relative ≤ ${Math.max(...rel).toExponential(1)}`);
  onnx.problem.dispose();
  stack.problem.dispose();
});

test("the exported transformer.onnx runs in onnxruntime-node at other batch sizes and equals the native DiT", async () => {
  const teacher = loadTeacher("models/fmnist/teacher.safetensors");
  const session = await ort.InferenceSession.create(join(bundle, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "timestep", "encoder_hidden_states"]);
  assert.deepEqual(session.outputNames, ["velocity"], "the time embedding is a named tensor, not an output");
  for (const B of [1, 3]) {
    const x = normal(key(B), B * 196), s = Float32Array.from({ length: B }, (_, i) => (i + 0.5) / B);
    const c = normal(key(10 + B), B * 9 * 65);
    const out = await session.run({
      latent: new ort.Tensor("float32", x, [B, 7, 7, 4]), timestep: new ort.Tensor("float32", s.map((v) => v * 1000), [B]),
      encoder_hidden_states: new ort.Tensor("float32", c, [B, 9, 65]),
    });
    const [v, lv] = ditFlow(tree.ref(teacher.params.dit), teacher.dit, np.array(x).reshape([B, 196]), np.array(s).reshape([B, 1]), np.array(c).reshape([B, 9, 65]));
    lv.dispose();
    const want = v.dataSync() as Float32Array;
    const e = maxAbs(out.velocity.data as Float32Array, want);
    assert.ok(e < 1e-5 * Math.max(1, maxOf(want)), `batch ${B}: max |Δ| ${e.toExponential(2)}`);
  }
  await session.release();
  tree.dispose(teacher.params as never);
});

test("a short run through the bundle: student, metrics, grids; the student exported in the teacher's contract, with the bundle's table and decoder", async () => {
  const run = join(dir, "run");
  const lines: string[] = [];
  const r = await distill(tinyConfig("onnx"), run, { progress: (l) => lines.push(l) });
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.equal(r.steps, 3);
  // config.json holds the config as written (no guidance for a bundle); the run trained with teacher.json's scales
  assert.equal(JSON.parse(readFileSync(join(run, "config.json"), "utf8")).guidance, undefined);
  assert.deepEqual(openRun(run).config.guidance, [4, 4.5, 5], "teacher.json's guidance scales");
  const metrics = JSON.parse(readFileSync(join(run, "metrics.json"), "utf8"));
  for (const k of ["consistency_rel_mse_1step", "consistency_rel_mse_2step", "consistency_rel_mse_4step"]) assert.ok(Number.isFinite(metrics[k]), k);
  assert.equal(metrics.guidance_conditioned, 1);
  for (const f of ["student.safetensors", "grid-teacher-16step.png", "grid-student-1step.png", "grid-compare.png", "report.md"]) assert.ok(existsSync(join(run, f)), f);

  const out = join(dir, "export");
  await exportStudent(run, out);
  // the folder is self-contained: the bundle's table and decoder, byte for byte, listed in manifest.json
  for (const f of ["prompt_embeddings.safetensors", "vae_decoder.onnx"]) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(bundle, f))), f);
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  assert.deepEqual(manifest.models, { transformer: "transformer.onnx", vae_decoder: "vae_decoder.onnx" });
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "timestep", "encoder_hidden_states"]);
  assert.deepEqual(session.outputNames, ["velocity"]);
  const B = 2, x = normal(key(3), B * 196);
  const c = new Float32Array(B * 9 * 65); // any condition rows
  const v = await session.run({ latent: new ort.Tensor("float32", x, [B, 7, 7, 4]), timestep: new ort.Tensor("float32", Float32Array.of(1000, 1000), [B]), encoder_hidden_states: new ort.Tensor("float32", c, [B, 9, 65]) });
  assert.ok((v.velocity.data as Float32Array).every(Number.isFinite));
  assert.deepEqual(v.velocity.dims, [B, 7, 7, 4]);
  await session.release();
  console.log(`# bundle run: consistency 1/2/4 steps ${[1, 2, 4].map((s) => metrics[`consistency_rel_mse_${s}step`].toFixed(3)).join(" / ")}`);
});
