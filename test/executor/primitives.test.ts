/**
 * Per-primitive golden tests of the ONNX lowering (issue #5): forward, JVP and gradient of each
 * elementwise primitive and of the composite ops the models use, run by ONNX Runtime and by
 * jax-js, against a float64 reference (Math.* and analytic derivatives).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, nn, scipySpecial, jvp, grad, type Array } from "@jax-js/jax";
import { OnnxFunction } from "../../src/executor/onnxRun.ts";

type Case = {
  name: string;
  f: (x: Array) => Array;
  /** float64 value and derivative */
  ref: (x: number) => number;
  dref: (x: number) => number;
  /** input range */
  lo: number;
  hi: number;
};

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const erfRef = (x: number) => { // Abramowitz–Stegun 7.1.26 is too coarse; integrate the series instead
  let sum = 0, term = x;
  for (let n = 0; n < 60; n++) { sum += term / (2 * n + 1); term *= (-x * x) / (n + 1); }
  return (2 / Math.sqrt(Math.PI)) * sum;
};
const CASES: Case[] = [
  { name: "sin", f: np.sin, ref: Math.sin, dref: Math.cos, lo: -3, hi: 3 },
  { name: "cos", f: np.cos, ref: Math.cos, dref: (x) => -Math.sin(x), lo: -3, hi: 3 },
  { name: "exp", f: np.exp, ref: Math.exp, dref: Math.exp, lo: -4, hi: 3 },
  { name: "log", f: np.log, ref: Math.log, dref: (x) => 1 / x, lo: 0.1, hi: 5 },
  { name: "sqrt", f: np.sqrt, ref: Math.sqrt, dref: (x) => 0.5 / Math.sqrt(x), lo: 0.1, hi: 5 },
  { name: "reciprocal", f: (x) => np.reciprocal(x), ref: (x) => 1 / x, dref: (x) => -1 / (x * x), lo: 0.5, hi: 4 },
  { name: "atan", f: np.atan, ref: Math.atan, dref: (x) => 1 / (1 + x * x), lo: -4, hi: 4 },
  { name: "asin", f: np.asin, ref: Math.asin, dref: (x) => 1 / Math.sqrt(1 - x * x), lo: -0.9, hi: 0.9 },
  { name: "erf", f: (x) => scipySpecial.erf(x), ref: erfRef, dref: (x) => (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x), lo: -2, hi: 2 },
  { name: "tanh", f: np.tanh, ref: Math.tanh, dref: (x) => 1 - Math.tanh(x) ** 2, lo: -3, hi: 3 },
  { name: "sigmoid", f: nn.sigmoid, ref: sig, dref: (x) => sig(x) * (1 - sig(x)), lo: -5, hi: 5 },
  { name: "silu", f: nn.silu, ref: (x) => x * sig(x), dref: (x) => sig(x) * (1 + x * (1 - sig(x))), lo: -5, hi: 5 },
  { name: "relu", f: nn.relu, ref: (x) => Math.max(0, x), dref: (x) => (x > 0 ? 1 : 0), lo: -2, hi: 2.1 }, // avoids x = 0, where the derivative is a convention,
  { name: "square", f: np.square, ref: (x) => x * x, dref: (x) => 2 * x, lo: -3, hi: 3 },
];

const N = 33;
const inputs = (c: Case) => Float32Array.from({ length: N }, (_, i) => c.lo + ((c.hi - c.lo) * (i + 0.5)) / N);

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return e;
}

test("each elementwise primitive: forward, JVP and gradient on ONNX Runtime and jax-js match float64", async () => {
  const rows: string[] = [];
  for (const c of CASES) {
    const xs = inputs(c);
    const x64 = globalThis.Array.from(xs);
    const want = { f: x64.map(c.ref), d: x64.map(c.dref) };
    const programs = {
      f: (x: Array) => c.f(x),
      jvp: (x: Array) => jvp(c.f, [x], [np.onesLike(x.ref)])[1],
      grad: (x: Array) => grad((y: Array) => np.sum(c.f(y)))(x),
    };
    const errs: number[] = [];
    for (const [kind, fn] of Object.entries(programs)) {
      const onnx = new OnnxFunction(fn as never);
      const [got] = await onnx.run([{ data: xs, shape: [N] }]);
      await onnx.dispose();
      const eager = fn(np.array(xs)).dataSync() as Float32Array;
      const ref = kind === "f" ? want.f : want.d;
      const tol = c.name === "erf" || c.name === "asin" ? 2e-5 : 1e-5;
      const eOnnx = maxRelErr(got.data, ref), eJax = maxRelErr(eager, ref);
      errs.push(eOnnx, eJax);
      assert.ok(eOnnx <= tol, `${c.name} ${kind} on ONNX: ${eOnnx.toExponential(2)}`);
      assert.ok(eJax <= tol, `${c.name} ${kind} on jax-js: ${eJax.toExponential(2)}`);
    }
    rows.push(`${c.name}: max error ${Math.max(...errs).toExponential(1)}`);
  }
  assert.equal(rows.length, CASES.length);
});

test("composite ops of the models (matmul, softmax, max reduction): ONNX matches float64 forward and gradient", async () => {
  const A = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
  const Bm = Float32Array.from({ length: 12 }, (_, i) => Math.cos(2 * i));
  // matmul [3,4]·[4,3] and its gradient w.r.t. the left factor (sum of the product → row sums of B)
  const mm = new OnnxFunction(((a: Array, b: Array) => [np.matmul(a.ref, b.ref), grad((x: Array) => np.sum(np.matmul(x, b.ref)))(a)]) as never);
  const [prod, dA] = await mm.run([{ data: A, shape: [3, 4] }, { data: Bm, shape: [4, 3] }]);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += A[i * 4 + k] * Bm[k * 3 + j];
    assert.ok(Math.abs(prod.data[i * 3 + j] - s) < 1e-6);
  }
  for (let i = 0; i < 3; i++) for (let k = 0; k < 4; k++) {
    const rowSum = Bm[k * 3] + Bm[k * 3 + 1] + Bm[k * 3 + 2];
    assert.ok(Math.abs(dA.data[i * 4 + k] - rowSum) < 1e-6);
  }
  await mm.dispose();
  // softmax over the last axis and the gradient of its first entry: ∂p₀/∂x_j = p₀(δ₀ⱼ − p_j)
  const x = Float32Array.of(0.3, -1.2, 2.0, 0.7);
  const sm = new OnnxFunction(((v: Array) => [nn.softmax(v.ref, -1), grad((y: Array) => np.sum(nn.softmax(y, -1).mul(np.array([1, 0, 0, 0]))))(v)]) as never);
  const [p, dp] = await sm.run([{ data: x, shape: [4] }]);
  const e = globalThis.Array.from(x, Math.exp), z = e.reduce((a, b) => a + b);
  const p64 = e.map((v) => v / z);
  p64.forEach((v, j) => {
    assert.ok(Math.abs(p.data[j] - v) < 1e-6);
    assert.ok(Math.abs(dp.data[j] - p64[0] * ((j === 0 ? 1 : 0) - v)) < 1e-6);
  });
  await sm.dispose();
  // max reduction picks the largest entry; its gradient is one-hot there
  const mx = new OnnxFunction(((v: Array) => [np.max(v.ref), grad((y: Array) => np.max(y))(v)]) as never);
  const [m, dm] = await mx.run([{ data: x, shape: [4] }]);
  assert.equal(m.data[0], 2.0);
  assert.deepEqual(globalThis.Array.from(dm.data), [0, 0, 1, 0]);
  await mx.dispose();
});
