import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, tree } from "@jax-js/jax";
import { loadTeacher } from "../../src/stack/load.ts";
import { ditFlow } from "../../src/models/dit.ts";
import { encodeText, tokenRows } from "../../src/models/textEncoder.ts";
import { decode, encode } from "../../src/data/tokenizer.ts";
import { parameterCount } from "../../src/numerics/tree.ts";

/** The shipped teacher's velocity on a fixed input (two prompts, two flow times). */
function teacherProbe(path = "models/fmnist/teacher.safetensors") {
  const t = loadTeacher(path);
  const prompts = ["a photo of a sneaker", ""];
  const rows = tokenRows(t.tokenizer, prompts, t.text);
  const cond = encodeText(tree.ref(t.params.text), t.text, np.array(rows.oneHot).reshape([2, t.text.maxWords, t.text.vocab]), np.array(rows.mask).reshape([2, t.text.maxWords + 1]));
  const x = np.array(Float32Array.from({ length: 2 * t.latentDim }, (_, i) => Math.sin(0.37 * i))).reshape([2, t.latentDim]);
  const [v, logvar] = ditFlow(tree.ref(t.params.dit), t.dit, x, np.array(Float32Array.of(0.3, 0.8)).reshape([2, 1]), cond);
  logvar.dispose();
  const values = v.dataSync() as Float32Array;
  const counts = { text: parameterCount(t.params.text), dit: parameterCount(t.params.dit) };
  const words = decode(t.tokenizer, encode(t.tokenizer, "a photo of a sneaker", t.text.maxWords));
  tree.dispose(t.params as never);
  return { values, counts, words, config: t.dit };
}

test("shipped teacher: config, parameter counts, vocabulary and a recorded velocity", () => {
  const { values, counts, words, config } = teacherProbe();
  assert.equal(config.side * config.side * config.channels, 196);
  assert.equal(words, "a photo of a sneaker");
  assert.deepEqual(counts, RECORDED.counts);
  RECORDED.values.forEach(([i, v]) => assert.ok(Math.abs(values[i] - v) < 1e-4, `v[${i}] = ${values[i]}, recorded ${v}`));
});

/** Recorded with models/fmnist/teacher.safetensors as shipped (ONNX and jax-js agree to ~1e-6). */
const RECORDED = {
  counts: { text: 87616, dit: 987524 },
  values: [[0, -0.396841], [7, 0.525892], [100, -0.546725], [250, -0.731977], [391, 0.941043]] as [number, number][],
};
