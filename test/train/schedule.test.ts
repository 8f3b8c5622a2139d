import { test } from "node:test";
import assert from "node:assert/strict";
import { learningRate } from "../../src/train/schedule.ts";

test("learning-rate schedules: linear warmup, constant, cosine to zero", () => {
  const constant = { kind: "constant", warmup: 4 } as const;
  assert.deepEqual([0, 1, 3, 4, 100].map((s) => learningRate(s, 100, 1, constant)), [0.25, 0.5, 1, 1, 1]);
  const cosine = { kind: "cosine", warmup: 0 } as const;
  assert.equal(learningRate(0, 100, 2, cosine), 2);
  assert.ok(Math.abs(learningRate(50, 100, 2, cosine) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(100, 100, 2, cosine)) < 1e-12);
});

test("cool-down: the rate falls linearly to 1/cooldown of itself at the last step, after warmup and any base schedule", () => {
  const wsd = { kind: "constant", warmup: 2, cooldown: 4 } as const;
  // steps 0–9 of 10 at lr 2: warmup 1, 2; stable; the last four (from total − cooldown) at 4/4, 3/4, 2/4, 1/4
  assert.deepEqual(Array.from({ length: 10 }, (_, s) => learningRate(s, 10, 2, wsd)), [1, 2, 2, 2, 2, 2, 2, 1.5, 1, 0.5]);
  const cosine = { kind: "cosine", warmup: 0, cooldown: 4 } as const;
  const plain = { kind: "cosine", warmup: 0 } as const;
  assert.ok(Math.abs(learningRate(8, 10, 2, cosine) - learningRate(8, 10, 2, plain) * 0.5) < 1e-12);
  // a run shorter than its cool-down cools down over the whole run
  assert.deepEqual([0, 1, 2].map((s) => learningRate(s, 3, 3, { kind: "constant", warmup: 0, cooldown: 100 })), [3, 2, 1]);
});
