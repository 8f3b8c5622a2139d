import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, jit, tree } from "@jax-js/jax";
import { initMlp } from "../../src/models/mlp.ts";
import { mlpStudent } from "../../src/gmm/student.ts";
import { makeTrainStep, STEP_STATS } from "../../src/train/step.ts";
import { adamw } from "../../src/train/optim.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { namedLeaves, toHost, type Tree } from "../../src/numerics/tree.ts";

const cfg = { dim: 4, condDim: 2, hidden: 16, embedDim: 16, depth: 1, mlpRatio: 2 };
const opt = adamw({ kind: "adamw", lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });

function batch(dxdtValue?: number) {
  const B = 3;
  const dxdt = dxdtValue === undefined ? np.array(normal(key(2), B * 4)).reshape([B, 4]) : np.full([B, 4], dxdtValue);
  return {
    xt: np.array(normal(key(1), B * 4)).reshape([B, 4]), t: np.array([[0.3], [0.9], [1.4]]), dxdt,
    cond: np.array([[1, 0], [0, 1], [0, 0]]), w: np.array([[4], [4.5], [5]]), keep: np.ones([B, 1]),
    x0: np.array(normal(key(3), B * 4)).reshape([B, 4]),
  };
}

function runStep(b: ReturnType<typeof batch>, endpointWeight = 0) {
  const params = initMlp(key(0), cfg);
  const state = opt.init(namedLeaves(params as Tree).map(([, a]) => a.ref));
  const before = namedLeaves(params as Tree).map(([, a]) => toHost(a));
  const step = jit(makeTrainStep(mlpStudent, opt, 0.1, endpointWeight));
  const hyper = Object.fromEntries(Object.entries(opt.hyper(0, 1e-3)).map(([k, v]) => [k, np.array(v)]));
  const [p, s, stats] = step(params, state, b, np.array(1), hyper);
  const after = namedLeaves(p as Tree).map(([, a]) => toHost(a));
  const values = Object.fromEntries(STEP_STATS.map((n, i) => [n, stats.ref.dataSync()[i]]));
  tree.dispose([p as Tree, s as unknown as Tree, stats]);
  step.dispose();
  return { before, after, values };
}

test("a finite step updates the parameters and reports its diagnostics", () => {
  const { before, after, values } = runStep(batch());
  assert.equal(values.applied, 1);
  assert.ok(values.grad_norm > 0 && Number.isFinite(values.loss));
  assert.ok(before.some((b, i) => b.some((v, j) => v !== after[i][j])));
});

test("a non-finite target skips the update: parameters unchanged, applied = 0", () => {
  const { before, after, values } = runStep(batch(NaN));
  assert.equal(values.applied, 0);
  assert.ok(!Number.isFinite(values.loss));
  before.forEach((b, i) => assert.deepEqual(after[i], b));
});

test("endpoint regression: the logged error is the closed form at the step's parameters; weight λ adds λ·error to the loss", () => {
  const params = initMlp(key(0), cfg);
  const b = batch();
  const [xt, t, x0] = [toHost(b.xt), toHost(b.t), toHost(b.x0)];
  const [F, logvar] = mlpStudent(params, b.xt.ref.div(0.5), b.t.ref, b.cond.ref, b.w.ref);
  const f = toHost(F);
  logvar.dispose();
  let expected = 0;
  for (let r = 0; r < 3; r++) {
    for (let j = 0; j < 4; j++) expected += (Math.cos(t[r]) * xt[r * 4 + j] - Math.sin(t[r]) * 0.5 * f[r * 4 + j] - x0[r * 4 + j]) ** 2 / 4 / 0.25;
  }
  expected /= 3;
  tree.dispose(b as never);
  const plain = runStep(batch()).values;
  const weighted = runStep(batch(), 3).values;
  assert.ok(Math.abs(plain.endpoint_mse - expected) <= 1e-5 * expected, `${plain.endpoint_mse} vs ${expected}`);
  assert.equal(weighted.endpoint_mse, plain.endpoint_mse);
  assert.ok(Math.abs(weighted.loss - (plain.loss + 3 * expected)) <= 1e-5 * Math.abs(weighted.loss), `${weighted.loss} vs ${plain.loss} + 3·${expected}`);
  // the spec's part of the loss is untouched by the weight
  assert.equal(weighted.loss_no_logvar, plain.loss_no_logvar);
});
