import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, tree } from "@jax-js/jax";
import { initClassifier, classify, crossEntropy } from "../../src/models/classifier.ts";
import { key } from "../../src/numerics/random.ts";

test("classifier: features [B, F] and logits [B, K]; logits are the head applied to the features", () => {
  const c = { pixels: 12, hidden: 8, features: 6, classes: 3 };
  const p = initClassifier(key(1), c);
  const [features, logits] = classify(tree.ref(p), np.array(new Float32Array(2 * 12).map((_, i) => (i % 7) / 7)).reshape([2, 12]));
  assert.deepEqual(features.shape, [2, 6]);
  assert.deepEqual(logits.shape, [2, 3]);
  const f = features.dataSync() as Float32Array, l = logits.dataSync() as Float32Array;
  const w = p.head.w.ref.dataSync() as Float32Array, b = p.head.b.ref.dataSync() as Float32Array;
  for (let r = 0; r < 2; r++) for (let k = 0; k < 3; k++) {
    let s = b[k];
    for (let j = 0; j < 6; j++) s += f[r * 6 + j] * w[j * 3 + k];
    assert.ok(Math.abs(l[r * 3 + k] - s) < 1e-5, `logit ${r},${k}`);
  }
  tree.dispose(p);
});

test("cross-entropy: log K for uniform logits; −log(3/4) for logits [0, ln 3] and class 1", () => {
  const uniform = crossEntropy(np.zeros([2, 5]), np.array(Float32Array.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0])).reshape([2, 5]));
  assert.ok(Math.abs((uniform.dataSync() as Float32Array)[0] - Math.log(5)) < 1e-6);
  const two = crossEntropy(np.array(Float32Array.from([0, Math.log(3)])).reshape([1, 2]), np.array(Float32Array.from([0, 1])).reshape([1, 2]));
  assert.ok(Math.abs((two.dataSync() as Float32Array)[0] + Math.log(3 / 4)) < 1e-6);
});
