import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np } from "@jax-js/jax";
import { consistencyTangent, normalizeTangent, scmLoss, tangentRatio, jvpTangents, endpointError } from "../../src/method/loss.ts";
import { denoise } from "../../src/method/trigflow.ts";

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test("sCM loss on a hand-computed case", () => {
  const t = 0.7, r = 0.5, sd = 0.5, lv = 0.2;
  const xt = [0.3, -0.2], dxdt = [0.5, 0.1], fm = [0.2, 0.4], J = [-0.1, 0.3], F = [0.25, 0.35];
  const c = Math.cos(t), s = Math.sin(t);
  // g = −cos²t·(σ_d F⁻ − dx/dt) − r·(cos t sin t x_t + σ_d J), then g/(‖g‖ + 0.1)
  const g = xt.map((_, i) => -c * c * (sd * fm[i] - dxdt[i]) - r * (c * s * xt[i] + sd * J[i]));
  const gn = Math.hypot(...g);
  const target = fm.map((f, i) => f + g[i] / (gn + 0.1));
  const mse = ((F[0] - target[0]) ** 2 + (F[1] - target[1]) ** 2) / 2;
  const weight = 1 / (sd * Math.tan(t));
  const expected = (weight / Math.exp(lv)) * mse + lv;

  const tCol = np.array([[t]]);
  const [gArr, norm] = normalizeTangent(consistencyTangent(np.array([fm]), np.array([J]), np.array([xt]), np.array([dxdt]), tCol.ref, r));
  close(norm.dataSync()[0], gn);
  const parts = scmLoss(np.array([F]), np.array([[lv]]), np.array([fm]).add(gArr), tCol, np.array([[1]]));
  close(parts.loss.dataSync()[0], expected);
  close(parts.lossNoLogvar.dataSync()[0], weight * mse);
  close(parts.lossNoWeight.dataSync()[0], mse);
});

test("the keep mask zeroes a sample's contribution; the mean is over the batch", () => {
  const parts = scmLoss(np.array([[1, 1], [3, 3]]), np.array([[0], [0]]), np.zeros([2, 2]), np.array([[0.5], [0.5]]), np.array([[1], [0]]));
  close(parts.lossNoWeight.dataSync()[0], 0.5);
});

test("JVP tangents are cos t·sin t·(dx/dt)/σ_d and cos t·sin t", () => {
  const [vu, vt] = jvpTangents(np.array([[0.4, -0.2]]), np.array([[0.9]]));
  const cs = Math.cos(0.9) * Math.sin(0.9);
  close(vu.dataSync()[0], (cs * 0.4) / 0.5);
  close(vt.dataSync()[0], cs);
});

test("tangent ratio: warmup, calm-down, final value", () => {
  const s = { warmup: 4000, calmStart: 15000, calmSteps: 2000, rFinal: 0.75 };
  close(tangentRatio(0, s), 0);
  close(tangentRatio(2000, s), 0.5);
  close(tangentRatio(10000, s), 1);
  close(tangentRatio(16000, s), 0.875);
  close(tangentRatio(20000, s), 0.75);
});

test("endpoint error: x̂0 = cos t·x_t − sin t·σ_d·F by hand, zero at the F that lands on the endpoint", () => {
  const t = 1.1, sd = 0.5, c = Math.cos(t), s = Math.sin(t);
  const xt = [0.4, -0.3, 0.2], F = [0.1, -0.6, 0.5], x0 = [0.05, 0.2, -0.1];
  const x0hat = xt.map((x, i) => c * x - s * sd * F[i]);
  Array.from(denoise(np.array([xt]), np.array([F]), np.array([[t]])).dataSync(), (v: number, i) => close(v, x0hat[i]));
  const expected = x0hat.reduce((acc, v, i) => acc + (v - x0[i]) ** 2, 0) / 3 / (sd * sd);
  close(endpointError(np.array([F]), np.array([xt]), np.array([[t]]), np.array([x0])).dataSync()[0], expected);
  // the F whose x̂0 is the endpoint: (cos t·x_t − x0)/(sin t·σ_d)
  const exact = xt.map((x, i) => (c * x - x0[i]) / (s * sd));
  close(endpointError(np.array([exact]), np.array([xt]), np.array([[t]]), np.array([x0])).dataSync()[0], 0);
  // at t = π/2 the estimate is the 1-step sample −σ_d·F, whatever x_t
  Array.from(denoise(np.array([[9, 9, 9]]), np.array([F]), np.array([[Math.PI / 2]])).dataSync(), (v: number, i) => close(v, -sd * F[i]));
});
