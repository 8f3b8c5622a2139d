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
