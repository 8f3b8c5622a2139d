import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np } from "@jax-js/jax";
import { came, adamw, CAME_DEFAULTS, globalNorm, clipByGlobalNorm } from "../../src/train/optim.ts";
import { updateEma, emaDecayAt } from "../../src/train/ema.ts";

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
const hyperArrays = (h: Record<string, number>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, np.array(v)]));

test("CAME: first step on a 2×2 matrix and a vector, against hand-computed values", () => {
  const opt = came({ ...CAME_DEFAULTS, lr: 0.1 });
  const W = [[1, 2], [3, 4]], G = [[0.5, -1], [2, 0.25]];
  const b = [1, -1], gb = [0.3, -0.6];
  const params = [np.array(W), np.array(b)];
  const state = opt.init(params.map((p) => p.ref));
  const [next] = opt.update([np.array(G), np.array(gb)], state, params, hyperArrays(opt.hyper(0, 0.1)));
  const [b1, b2, b3] = [0.9, 0.999, 0.9999];
  // Matrix: row/col EMAs of g² from zero, factored rsqrt, RMS clip, momentum, instability.
  const sq = G.map((r) => r.map((g) => g * g + 1e-30));
  const row = sq.map((r) => (1 - b2) * (r[0] + r[1]) / 2);
  const col = [0, 1].map((j) => (1 - b2) * (sq[0][j] + sq[1][j]) / 2);
  const rowMean = (row[0] + row[1]) / 2;
  let u = G.map((r, i) => r.map((g, j) => g / Math.sqrt((row[i] / rowMean) * col[j])));
  const rms = Math.sqrt(u.flat().reduce((a, x) => a + x * x, 0) / 4);
  u = u.map((r) => r.map((x) => x / Math.max(rms, 1)));
  const m = u.map((r) => r.map((x) => (1 - b1) * x));
  const res = u.map((r, i) => r.map((x, j) => (x - m[i][j]) ** 2 + 1e-16));
  const rrow = res.map((r) => (1 - b3) * (r[0] + r[1]) / 2);
  const rcol = [0, 1].map((j) => (1 - b3) * (res[0][j] + res[1][j]) / 2);
  const rrowMean = (rrow[0] + rrow[1]) / 2;
  const Wn = W.map((r, i) => r.map((w, j) => w - 0.1 * m[i][j] / Math.sqrt((rrow[i] / rrowMean) * rcol[j])));
  const got = next[0].dataSync();
  Wn.flat().forEach((w, i) => close(got[i], w, 1e-4));
  // Vector: plain EMA of g², RMS clip, momentum; no confidence rescaling.
  let ub = gb.map((g) => g / Math.sqrt((1 - b2) * (g * g + 1e-30)));
  const rmsb = Math.sqrt((ub[0] ** 2 + ub[1] ** 2) / 2);
  ub = ub.map((x) => x / Math.max(rmsb, 1));
  const gotb = next[1].dataSync();
  b.forEach((v, i) => close(gotb[i], v - 0.1 * (1 - b1) * ub[i], 1e-5));
});

test("AdamW: first step moves each weight by lr·sign(g) (bias-corrected), plus decay", () => {
  const opt = adamw({ kind: "adamw", lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
  const p = [np.array([1, -2, 3])];
  const [next] = opt.update([np.array([0.5, -0.1, 2])], opt.init(p.map((x) => x.ref)), p, hyperArrays(opt.hyper(0, 0.01)));
  const got = next[0].dataSync();
  [1 - 0.001 - 0.01, -2 + 0.002 + 0.01, 3 - 0.003 - 0.01].forEach((v, i) => close(got[i], v, 1e-5));
});

test("global-norm clipping scales every gradient by maxNorm/‖g‖", () => {
  const grads = [np.array([3, 0]), np.array([[0, 4]])];
  const norm = globalNorm(grads);
  close(norm.ref.dataSync()[0], 5);
  const clipped = clipByGlobalNorm(grads, norm, 1);
  close(clipped[0].dataSync()[0], 0.6, 1e-4);
  close(clipped[1].dataSync()[1], 0.8, 1e-4);
});

test("parameter average: toward fixed parameters c, ē_n = c + (ē_0 − c)·Π d_s with the warmed-up decays", () => {
  const avg = [Float32Array.of(1, -2), Float32Array.of(10)];
  const c = [Float32Array.of(0, 2), Float32Array.of(4)];
  let keep = 1;
  for (let s = 0; s < 50; s++) {
    updateEma(avg, c, 0.95, s);
    keep *= emaDecayAt(0.95, s);
  }
  assert.equal(emaDecayAt(0.95, 0), 0.1); // (1 + 0)/(10 + 0): the start is forgotten fast
  assert.equal(emaDecayAt(0.95, 1000), 0.95);
  close(avg[0][0], 0 + (1 - 0) * keep);
  close(avg[0][1], 2 + (-2 - 2) * keep);
  close(avg[1][0], 4 + (10 - 4) * keep);
});

test("parameter average before its decay binds: a power-function average, weights 9·s⁸/S⁹ (mean 0.9·S, spread 0.0905·S)", () => {
  // averaging θ_s = s/S and (s/S)² gives the weights' mean and spread in units of S; the closed
  // forms of the density (γ+1)·x^γ on [0, 1], γ = 8: mean (γ+1)/(γ+2), variance (γ+1)/((γ+2)²(γ+3))
  for (const S of [1400, 5000]) {
    const m = [new Float32Array(2)];
    for (let s = 0; s < S; s++) updateEma(m, [Float32Array.of(s / S, (s / S) ** 2)], 0.999, s);
    close(m[0][0], 0.9, 2e-3);
    close(Math.sqrt(m[0][1] - m[0][0] ** 2), Math.sqrt(9 / 1100), 2e-3);
  }
  assert.ok(emaDecayAt(0.999, 8989) < 0.999); // 0.999 binds only from step 8,990 on
  assert.equal(emaDecayAt(0.999, 8990), 0.999);
});
