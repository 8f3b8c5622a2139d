import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np } from "@jax-js/jax";
import { gmmArrays, gmmFlowVelocity, type GmmSpec } from "../../src/models/gmm.ts";
import { key, normal, uniform } from "../../src/numerics/random.ts";

const spec: GmmSpec = {
  dim: 2, prompts: ["a", "b"], components: 2, std: 0.3,
  means: Float32Array.from([1, 1, -1, 0.5, 0, -1.5, 2, -0.5]),
};

/** Monte-Carlo E[ε − z | x_s]: z from the prompt's mixture weighted by p(x_s | z) = N((1−s)z, s²). */
function monteCarloVelocity(x: number[], s: number, prompts: number[], n = 400000): number[] {
  const eps = normal(key(11), n * 2);
  const pick = uniform(key(12), n);
  const sum = [0, 0];
  let wsum = 0;
  for (let i = 0; i < n; i++) {
    const comp = prompts[Math.floor(pick[i] * prompts.length)] * 2 + Math.floor((pick[i] * prompts.length * 2) % 2);
    const z = [0, 1].map((j) => spec.means[comp * 2 + j] + spec.std * eps[2 * i + j]);
    const e = [0, 1].map((j) => (x[j] - (1 - s) * z[j]) / s);
    const w = Math.exp(-0.5 * (e[0] ** 2 + e[1] ** 2));
    wsum += w;
    for (let j = 0; j < 2; j++) sum[j] += w * (e[j] - z[j]);
  }
  return sum.map((v) => v / wsum);
}

test("closed-form GMM velocity equals a Monte-Carlo posterior estimate", () => {
  const arrays = gmmArrays(spec);
  const cases: [number[], number, number][] = [[[0.5, 0.2], 0.6, 0], [[-0.3, -0.8], 0.4, 1], [[1.0, -0.2], 0.8, -1]];
  for (const [x, s, prompt] of cases) {
    const cond = np.array([prompt === 0 ? [1, 0] : prompt === 1 ? [0, 1] : [0, 0]]);
    const v = gmmFlowVelocity({ means: arrays.means.ref, promptToComponents: arrays.promptToComponents.ref }, spec.std, cond, np.array([x]), np.array([[s]])).dataSync();
    const mc = monteCarloVelocity(x, s, prompt < 0 ? [0, 1] : [prompt]);
    for (let j = 0; j < 2; j++) assert.ok(Math.abs(v[j] - mc[j]) < 0.02, `s=${s} prompt ${prompt}: ${v[j]} vs MC ${mc[j]}`);
  }
});

test("at s = 1 the velocity is x − prior mean; the empty prompt's prior mean is the mean of all components", () => {
  const arrays = gmmArrays(spec);
  const x = [0.3, -0.7];
  const v = gmmFlowVelocity(arrays, spec.std, np.array([[0, 0]]), np.array([x]), np.array([[1]])).dataSync();
  const mean = [0, 1].map((j) => [0, 1, 2, 3].reduce((a, c) => a + spec.means[c * 2 + j], 0) / 4);
  for (let j = 0; j < 2; j++) assert.ok(Math.abs(v[j] - (x[j] - mean[j])) < 1e-5);
});
