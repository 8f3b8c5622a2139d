/**
 * GPU providers (WebGPU) have no kernels for bool Or/And/Equal: ONNX Runtime leaves such nodes to
 * the CPU, with copies around them at every step. The lowering writes logical ops as exact 0/1
 * float ops instead; this checks the graph of the training step's non-finite guard and that the
 * values are unchanged (CPU provider).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { numpy as np, type Array as JArray } from "@jax-js/jax";
import { lowerFunction, avalSpec } from "../../src/executor/lower.ts";

test("logical or/and and bool equality lower without bool Or/And/Equal nodes, with the same values", async () => {
  // the guard of optim.ts (isfinite(g) ∧ isfinite(loss)), an or, and a comparison of bools
  const f = (g: JArray, loss: JArray) => {
    const ok = np.logicalAnd(np.isfinite(g.ref), np.isfinite(loss.ref));
    const either = np.logicalOr(np.isfinite(g), np.greater(loss, 0));
    return [ok.ref.astype(np.float32), either.ref.astype(np.float32), np.equal(ok, either).astype(np.float32)];
  };
  const lowered = lowerFunction(f, [avalSpec([4]), avalSpec([4])] as never, { name: "guard", inputNames: ["g", "loss"], outputNames: ["ok", "either", "same"] });
  for (const op of ["Or", "And", "Xor"]) assert.equal(lowered.opCounts[op] ?? 0, 0, `${op} nodes: ${JSON.stringify(lowered.opCounts)}`);
  const session = await ort.InferenceSession.create(lowered.model);
  const g = Float32Array.from([1, Infinity, NaN, -2]), loss = Float32Array.from([1, -1, 3, -Infinity]);
  const out = await session.run({ g: new ort.Tensor("float32", g, [4]), loss: new ort.Tensor("float32", loss, [4]) });
  const fin = (x: number) => Number.isFinite(x);
  const ok = Array.from(g, (x, i) => Number(fin(x) && fin(loss[i])));
  const either = Array.from(g, (x, i) => Number(fin(x) || loss[i] > 0));
  assert.deepEqual(Array.from(out.ok.data as Float32Array), ok);
  assert.deepEqual(Array.from(out.either.data as Float32Array), either);
  assert.deepEqual(Array.from(out.same.data as Float32Array), ok.map((v, i) => Number(v === either[i])));
  await session.release();
});
