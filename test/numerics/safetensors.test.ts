import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeSafetensors, decodeSafetensors } from "../../src/numerics/safetensors.ts";

test("safetensors round-trip, header layout of the format", () => {
  const tensors = new Map([["a.w", { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }], ["b", { shape: [1], data: Float32Array.from([-0.5]) }]]);
  const bytes = encodeSafetensors(tensors, { step: "7" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header["a.w"], { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header["b"].data_offsets, [24, 28]);
  const back = decodeSafetensors(bytes);
  assert.equal(back.metadata.step, "7");
  assert.deepEqual(back.tensors.get("a.w")!.data, tensors.get("a.w")!.data);
  assert.deepEqual(back.tensors.get("b")!.shape, [1]);
});

test("truncated or foreign files are errors that say so", () => {
  const bytes = encodeSafetensors(new Map([["x", { shape: [4], data: new Float32Array(4) }]]));
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), "f"), /truncated/);
  assert.throws(() => decodeSafetensors(new Uint8Array(4), "f"), /too short/);
  assert.throws(() => decodeSafetensors(new TextEncoder().encode("\x05\0\0\0\0\0\0\0hello"), "f"), /not valid JSON/);
});
