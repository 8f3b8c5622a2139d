/**
 * The run's evaluation draws its 2- and 4-step samples with one re-noising stream
 * (`renoiseStreams`): the i-th re-noising is the same noise at every step count, so the step
 * counts differ, image for image, only by their sampler.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/numerics/threads.ts";
import { numpy as np, type Array } from "@jax-js/jax";
import { studentSampleLatents, renoiseStreams } from "../../src/eval/studentSamples.ts";
import { studentTimesteps } from "../../src/method/sampler.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";
import type { Student } from "../../src/method/student.ts";

/** A student whose every step returns its input as x̂0 (F = (cos t − 1)/sin t · u): each output is the last re-noised state. */
const identity: Student<{ unused: Array }> = (p, u, t, cond, w) => {
  p.unused.dispose(); cond.dispose(); w.dispose();
  const ratio = np.cos(t.ref).sub(1).div(np.sin(t));
  return [u.mul(ratio), np.zeros([1, 1])];
};

test("2 and 4 steps of the evaluation share their re-noising draws: 4 steps = the 2-step sample carried on by the later re-noisings (closed form)", async () => {
  const B = 3, d = 5;
  const noise = normal(key(11), B * d);
  const cond = { data: new Float32Array(B * 2), shape: [B, 2] }, w = { data: new Float32Array(B).fill(4.5), shape: [B, 1] };
  const k = renoiseStreams(key(12)).metrics;
  const sampler = { twoStepMid: 0.7, eta: 1, multiStep: "tail" as const };
  const params = { unused: np.zeros([1]) };
  const two = await studentSampleLatents("onnx", identity, params, 2, noise, cond, w, k, sampler);
  const four = await studentSampleLatents("onnx", identity, params, 4, noise, cond, w, k, sampler);
  params.unused.dispose();
  // x̂0 = x at every step and η = 1: 2 steps give cos t1·z + sin t1·n1; 4 steps carry that state on
  // through the re-noisings at t2 and t3 with draws n2, n3 of the same stream
  const [, t1, t2, t3] = studentTimesteps(4, 0.7, undefined, "tail");
  const n1 = normal(foldIn(k, 1), B * d), n2 = normal(foldIn(k, 2), B * d), n3 = normal(foldIn(k, 3), B * d);
  for (let i = 0; i < B * d; i++) {
    assert.ok(Math.abs(two[i] - (Math.cos(t1) * noise[i] + Math.sin(t1) * n1[i])) < 1e-5, `2 steps, ${i}`);
    const carried = Math.cos(t3) * (Math.cos(t2) * two[i] + Math.sin(t2) * n2[i]) + Math.sin(t3) * n3[i];
    assert.ok(Math.abs(four[i] - carried) < 1e-5, `4 steps, ${i}: ${four[i]} vs ${carried}`);
  }
  assert.notDeepEqual(renoiseStreams(key(12)).metrics, renoiseStreams(key(12)).grids);
});
