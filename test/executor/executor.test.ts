import { test } from "node:test";
import assert from "node:assert/strict";
import { inChunks, type Inference } from "../../src/executor/inference.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { ConfigError, loadConfig, parseConfig, type ExecutorKind, type TbcmConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { loadSafetensors } from "../../src/numerics/safetensors.ts";
import { WeightLayout, Weights, loopPrograms, BATCH_KEYS } from "../../src/executor/programs.ts";
import { initMlp } from "../../src/models/mlp.ts";
import { mlpStudent } from "../../src/gmm/student.ts";
import { makeTrainStep, STEP_STATS, type PairBatch } from "../../src/train/step.ts";
import { makeOptimizer } from "../../src/train/optim.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { tempDir } from "../tempDir.ts";

/**
 * Tolerance between the executors, relative: float32 programs that sum in different orders.
 * Measured after 6 steps of the tiny configs: losses ≤ 5.4e-6, each parameter tensor ≤ 3e-6.
 */
const TOL = 1e-4;

const tiny = loadConfig(new URL("../fixtures/tiny.yaml", import.meta.url).pathname);
const tinyScm = parseConfig(JSON.parse(readFileSync(new URL("../fixtures/tiny.json", import.meta.url), "utf8")));
const tmp = () => tempDir("tbcm-exec-");
const on = (cfg: TbcmConfig, executor: ExecutorKind, steps = cfg.train.steps): TbcmConfig => ({ ...cfg, executor, train: { ...cfg.train, steps } });

const records = (dir: string) => readFileSync(join(dir, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const stepRecords = (dir: string) => records(dir).filter((r) => r.loss !== undefined);
const curve = (dir: string) => records(dir).filter((r) => r.consistency_rel_mse_1step !== undefined).map((r) => r.consistency_rel_mse_1step as number);
const student = (dir: string) => loadSafetensors(join(dir, "student.safetensors")).tensors;

function assertClose(got: number, want: number, what: string): void {
  assert.ok(Math.abs(got - want) <= TOL * Math.abs(want) + 1e-7, `${what}: ${got} vs ${want}`);
}

test("config key executor: onnx by default, jax accepted, anything else rejected naming the key", () => {
  assert.equal(tiny.executor, "onnx");
  assert.equal(parseConfig({ executor: "jax" }).executor, "jax");
  assert.throws(() => parseConfig({ executor: "gpu" }), (e: unknown) => e instanceof ConfigError && /"executor".*jax, onnx/.test(e.message));
});

const tinyEndpoint: TbcmConfig = { ...tiny, loss: { ...tiny.loss, endpointWeight: 2 } };
for (const [label, cfg] of [["TBCM, CAME (tiny.yaml)", tiny], ["TBCM with the endpoint regression", tinyEndpoint], ["sCM, AdamW (tiny.json)", tinyScm]] as const) {
  test(`${label}: 6 steps on jax and on onnx give the same losses, curve and parameters (≤ ${TOL} relative)`, async () => {
    const [a, b] = [tmp(), tmp()];
    await distill(on(cfg, "jax"), a);
    await distill(on(cfg, "onnx"), b);
    const [ra, rb] = [stepRecords(a), stepRecords(b)];
    assert.equal(ra.length, 6);
    assert.equal(rb.length, 6);
    ra.forEach((r, i) => {
      for (const k of STEP_STATS) {
        // the baseline's pairs have no endpoint, so its log has no endpoint error
        if (k === "endpoint_mse" && cfg.method === "scm") assert.equal(r[k], undefined);
        else assertClose(rb[i][k], r[k], `step ${i + 1} ${k}`);
      }
      assert.equal(rb[i].r, r.r);
      assert.equal(rb[i].lr, r.lr);
    });
    curve(a).forEach((v, i) => assertClose(curve(b)[i], v, `consistency curve point ${i}`));
    const [pa, pb] = [student(a), student(b)];
    assert.deepEqual([...pb.keys()], [...pa.keys()]);
    for (const [name, t] of pa) {
      const u = pb.get(name)!.data;
      let err = 0, ref = 0;
      t.data.forEach((x, i) => ((err += (x - u[i]) ** 2), (ref += x ** 2)));
      assert.ok(Math.sqrt(err) <= TOL * Math.sqrt(ref) + 1e-7, `${name}: relative error ${(Math.sqrt(err / ref)).toExponential(2)}`);
    }
  });
}

test("executor onnx: a resumed run ends with exactly the parameters and losses of an uninterrupted one", async () => {
  for (const cfg of [tiny, tinyScm]) {
    const whole = tmp(), split = tmp();
    await distill(on(cfg, "onnx"), whole);
    await distill(on(cfg, "onnx", 3), split);
    await distill(on(cfg, "onnx"), split, { resume: true });
    const [a, b] = [student(whole), student(split)];
    for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, `tensor ${name} (${cfg.method})`);
    assert.deepEqual(stepRecords(split).map((r) => r.loss), stepRecords(whole).map((r) => r.loss));
  }
});

test("a jax run resumes on onnx (the executor may change on --resume) and agrees with an all-jax run", async () => {
  const whole = tmp(), split = tmp();
  await distill(on(tiny, "jax"), whole);
  await distill(on(tiny, "jax", 3), split);
  await distill(on(tiny, "onnx"), split, { resume: true });
  const [a, b] = [stepRecords(whole), stepRecords(split)];
  a.forEach((r, i) => assertClose(b[i].loss, r.loss, `step ${i + 1} loss`));
  for (const [name, t] of student(whole)) {
    const u = student(split).get(name)!.data;
    let err = 0, ref = 0;
    t.data.forEach((x, i) => ((err += (x - u[i]) ** 2), (ref += x ** 2)));
    assert.ok(Math.sqrt(err) <= TOL * Math.sqrt(ref) + 1e-7, name);
  }
});

// The step program on its own: stable names, and the skip of a non-finite step on both executors.
const mlp = { dim: 4, condDim: 2, hidden: 16, embedDim: 16, depth: 1, mlpRatio: 2 };
const adamw = makeOptimizer({ kind: "adamw", lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
const noPairs = { f: (x: Array) => [x], inputNames: ["x"], outputNames: ["y"] };

function batch(dxdt?: number): PairBatch {
  const B = 3;
  return {
    xt: np.array(normal(key(1), B * 4)).reshape([B, 4]), t: np.array([[0.3], [0.9], [1.4]]),
    dxdt: dxdt === undefined ? np.array(normal(key(2), B * 4)).reshape([B, 4]) : np.full([B, 4], dxdt),
    cond: np.array([[1, 0], [0, 1], [0, 0]]), w: np.array([[4], [4.5], [5]]), keep: np.ones([B, 1]),
    x0: np.array(normal(key(3), B * 4)).reshape([B, 4]),
  };
}

test("weights are flattened under the checkpoint's tensor names; host and jax copies round-trip", () => {
  const params = initMlp(key(0), mlp);
  const state = adamw.init(tree.leaves(params as never) as Array[]);
  const layout = new WeightLayout(params, state);
  const dir = tmp();
  saveCheckpoint(join(dir, "c.safetensors"), { params, state, step: 0, config: "{}" });
  assert.deepEqual([...layout.names].sort(), [...loadSafetensors(join(dir, "c.safetensors")).tensors.keys()].sort());
  assert.deepEqual(BATCH_KEYS, ["xt", "t", "dxdt", "cond", "w", "keep", "x0"]);
  const w = Weights.fromJax(layout, params, state);
  const host = w.host().map((v) => v.slice());
  const again = Weights.fromHost(layout, host);
  const back = layout.flatten(again.params, again.state).map((a) => a.ref.dataSync());
  back.forEach((v, i) => assert.deepEqual(v, host[i], layout.names[i]));
  w.dispose();
  again.dispose();
  assert.throws(() => again.params, /disposed/);
});

for (const executor of ["jax", "onnx"] as const) {
  test(`${executor}: a non-finite batch skips the step (parameters and state unchanged, applied = 0); a finite one applies`, async () => {
    const params = initMlp(key(0), mlp);
    const state = adamw.init(tree.leaves(params as never) as Array[]);
    const layout = new WeightLayout(params, state);
    const programs = loopPrograms(executor, {
      pairPass: noPairs, trainStep: makeTrainStep(mlpStudent, adamw, 0.1), layout, hyperNames: Object.keys(adamw.hyper(0, 1e-3)),
    });
    const w0 = Weights.fromJax(layout, params, state);
    const before = w0.host().map((v) => v.slice());
    const skipped = await programs.step(w0, batch(NaN), 1, adamw.hyper(0, 1e-3));
    assert.equal(skipped.stats[STEP_STATS.indexOf("applied")], 0);
    assert.ok(!Number.isFinite(skipped.stats[0]));
    skipped.weights.host().forEach((v, i) => assert.deepEqual(v, before[i], layout.names[i]));
    const applied = await programs.step(skipped.weights, batch(), 1, adamw.hyper(0, 1e-3));
    assert.equal(applied.stats[STEP_STATS.indexOf("applied")], 1);
    assert.ok(applied.weights.host().some((v, i) => v.some((x, j) => x !== before[i][j])));
    assert.equal(programs.sessions, executor === "onnx" ? 1 : 0);
    applied.weights.dispose();
    await programs.dispose();
  });
}

test("onnx: memory stays flat over many training steps (host weights and batches are not leaked)", async () => {
  const cfg = { dim: 8, condDim: 4, hidden: 64, embedDim: 64, depth: 2, mlpRatio: 2 };
  const opt = makeOptimizer({ kind: "came", lr: 1e-4, betas: [0.9, 0.999, 0.9999], eps: [1e-30, 1e-16], weightDecay: 0, clipThreshold: 1 });
  const params = initMlp(key(0), cfg);
  const state = opt.init(tree.leaves(params as never) as Array[]);
  const layout = new WeightLayout(params, state);
  const programs = loopPrograms("onnx", {
    pairPass: noPairs, trainStep: makeTrainStep(mlpStudent, opt, 0.1), layout, hyperNames: Object.keys(opt.hyper(0, 1e-4)),
  });
  let weights = Weights.fromJax(layout, params, state);
  const B = 64;
  const run = async (i: number) => {
    const b: PairBatch = {
      xt: np.array(normal(key(i), B * 8)).reshape([B, 8]),
      t: np.array(new Float32Array(B).fill(0.3 + (i % 10) / 10)).reshape([B, 1]),
      dxdt: np.array(normal(key(i + 1e6), B * 8)).reshape([B, 8]),
      cond: np.zeros([B, 4]), w: np.full([B, 1], 4.5), keep: np.ones([B, 1]), x0: np.zeros([B, 8]),
    };
    if (i % 50 === 0) void weights.params; // as the loop's evaluations and checkpoints do
    ({ weights } = await programs.step(weights, b, 0.5, opt.hyper(i, 1e-4)));
  };
  for (let i = 0; i < 50; i++) await run(i);
  const before = process.memoryUsage().rss;
  for (let i = 50; i < 450; i++) await run(i);
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  // One leaked copy of parameters and state per step would be 400 × 0.8 MB.
  assert.ok(grown < 32, `RSS grew by ${grown.toFixed(1)} MiB over 400 steps`);
  weights.dispose();
  await programs.dispose();
});

test("inChunks: rows go through in chunks of at most the program's maxRows, the last padded, outputs in order", async () => {
  const seen: number[] = [];
  const double: Inference = {
    async run([x]) {
      seen.push(x.shape[0]);
      return [{ data: x.data.map((v) => 2 * v), shape: x.shape }];
    },
    async dispose() {},
    maxRows: 3,
  };
  const x = { data: Float32Array.from({ length: 14 }, (_, i) => i), shape: [7, 2] };
  const [y] = await inChunks(double, [x], 7, 5);
  assert.deepEqual(seen, [3, 3, 3]);
  assert.deepEqual(y.shape, [7, 2]);
  assert.deepEqual(globalThis.Array.from(y.data), globalThis.Array.from(x.data, (v) => 2 * v));
});
