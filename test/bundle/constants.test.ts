/**
 * Inputs that are the same on every call (`transformer.inputs.constant`): Flux's position ids
 * (`img_ids` [seq, 3], no batch axis) and a per-sample constant with a dynamic batch (a fixed
 * resolution, int64 [batch, 2], stored once and repeated over the batch). Their values come from
 * the table file's tensors of the same names; the exported student keeps them as inputs, and reads them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, assertWebGeneratorMatches, rgbDecoder, values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-constants-");
const PROMPTS = ["", "a red square", "a blue circle"];
// 11 ids: the length of the batch the export traces at by default, which must not make them a batch axis
const SEQ = 11, IDS = values(3 * SEQ, 3, 2), RES = [3, 5];

/** v(latent, t, cond [B, 6], ids [SEQ, 3], res int64 [B, 2]). */
function denoiser(): Uint8Array {
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "with_constants",
      nodes: [
        node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
        node("MatMul", ["h", "w_in"], ["a"]),
        node("MatMul", ["cond", "w_c"], ["b"]),
        node("ReduceSum", ["ids", "axis0"], ["idsum"], [attrInt("keepdims", 0)]), // [3]
        node("MatMul", ["idsum", "w_ids"], ["pe"]), // [16], broadcast over the batch
        node("Cast", ["res"], ["resf"], [attrInt("to", DataType.FLOAT)]),
        node("MatMul", ["resf", "w_res"], ["r"]), // [B, 16]
        node("Unsqueeze", ["t", "axis1"], ["t1"]), node("Mul", ["t1", "w_time"], ["tt"]), node("Sin", ["tt"], ["temb"]),
        node("Sum", ["a", "b", "pe", "r", "temb"], ["z"]),
        node("Tanh", ["z"], ["zz"]),
        node("MatMul", ["zz", "w_out"], ["o"]),
        node("Reshape", ["o", "shape"], ["v"]),
      ],
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)),
        float32Tensor("w_ids", [3, 16], values(48, 4, 0.5)), float32Tensor("w_res", [2, 16], values(32, 8, 0.3)),
        float32Tensor("w_time", [1, 16], values(16, 6, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
        int64Tensor("axis0", [1], [0]), int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
        { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
        { name: "ids", elemType: DataType.FLOAT, shape: [SEQ, 3] },
        { name: "res", elemType: DataType.INT64, shape: ["batch", 2] },
      ],
      outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  });
}

const bundle = join(dir, "bundle");
mkdirSync(bundle);
writeFileSync(join(bundle, "transformer.onnx"), denoiser());
const cond = values(PROMPTS.length * 6, 7, 1);
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([
  ["embeddings", { shape: [PROMPTS.length, 6], data: cond }],
  ["ids", { shape: [SEQ, 3], data: IDS }],
  ["res", { shape: [2], data: Float32Array.from(RES) }],
]), { prompts: JSON.stringify(PROMPTS) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "latent", time: "t", condition: "cond", constant: ["ids", "res"] }, output: "v", prediction: "flow_velocity" },
  guidance_scales: [2],
  vae_decoder: { input: "z", output: "rgb", output_range: [0, 1] },
}));
writeFileSync(join(bundle, "vae_decoder.onnx"), rgbDecoder());

const rowsOf = (idx: number[]) => Float32Array.from(idx.flatMap((p) => [...cond.subarray(6 * p, 6 * p + 6)]));
const feeds = (x: Float32Array, s: number[], idx: number[]) => ({
  latent: new ort.Tensor("float32", x, [idx.length, 2, 4, 4]), t: new ort.Tensor("float32", Float32Array.from(s), [idx.length]),
  cond: new ort.Tensor("float32", rowsOf(idx), [idx.length, 6]), ids: new ort.Tensor("float32", IDS, [SEQ, 3]),
  res: new ort.Tensor("int64", BigInt64Array.from(idx.flatMap(() => RES.map(BigInt))), [idx.length, 2]),
});
const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);

test("constant inputs (no batch axis, and int64 repeated over the batch) are fed from the table file as onnxruntime is fed them", async () => {
  const b = loadBundle(bundle);
  const idx = [1, 2, 0], s = [0.9, 0.4, 0.65];
  const x = normal(key(3), 3 * 32);
  const [v] = b.flow(b.paramList(), np.array(x).reshape([3, 32]), np.array(Float32Array.from(s)).reshape([3, 1]), np.array(rowsOf(idx)).reshape([3, 6]));
  const session = await ort.InferenceSession.create(join(bundle, "transformer.onnx"));
  const want = (await session.run(feeds(x, s, idx))).v.data as Float32Array;
  const other = (await session.run({ ...feeds(x, s, idx), ids: new ort.Tensor("float32", new Float32Array(3 * SEQ), [SEQ, 3]) })).v.data as Float32Array;
  await session.release();
  assert.ok(maxRel(other, want) > 1e-2, "the fixture's constant input changes its output");
  const e = maxRel(v.dataSync() as Float32Array, want);
  assert.ok(e < 1e-4, `relative error ${e.toExponential(2)}`);
});

test("constant inputs: a short run, and the exported student takes them as the teacher does (in plain JavaScript too)", async () => {
  const run = join(dir, "run");
  const r = await distill(shortRunConfig(bundle), run);
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  const out = join(dir, "export");
  const manifest = await exportStudent(run, out) as { constant_inputs: Record<string, { shape: (number | string)[]; type?: string }> };
  assert.deepEqual(manifest.constant_inputs, { ids: { shape: [SEQ, 3] }, res: { shape: ["batch", 2], type: "int64" } });
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "t", "cond", "ids", "res"]);
  const idx = [2, 1], s = [1, 0.5];
  const x = normal(key(8), 2 * 32);
  const got = (await session.run(feeds(x, s, idx))).v.data as Float32Array;
  // other constants, fed as the teacher would be fed them: the file reads them (it does not keep the table's)
  const otherIds = values(3 * SEQ, 11, 2), otherRes = [7, 2];
  const gotOther = (await session.run({
    ...feeds(x, s, idx), ids: new ort.Tensor("float32", otherIds, [SEQ, 3]), res: new ort.Tensor("int64", BigInt64Array.from([...otherRes, ...otherRes].map(BigInt)), [2, 2]),
  })).v.data as Float32Array;
  await session.release();
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const flow = bundleFlowStudent(loadBundle(bundle));
  const at = (constants?: Array[]) => {
    const [v, lv] = flow(tree.ref(student), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), np.array(rowsOf(idx)).reshape([2, 6]), np.full([2, 1], 2), constants);
    lv.dispose();
    return v.dataSync() as Float32Array;
  };
  const want = at(), wantOther = at([np.array(otherIds).reshape([SEQ, 3]), np.array(Float32Array.from([...otherRes, ...otherRes])).reshape([2, 2])]);
  tree.dispose(student);
  const e = maxRel(got, want);
  assert.ok(e < 1e-4, `exported student: relative error ${e.toExponential(2)}`);
  assert.ok(maxRel(wantOther, want) > 1e-2, "other constants change the student's output");
  const eOther = maxRel(gotOther, wantOther);
  assert.ok(eOther < 1e-4, `exported student fed other constants: relative error ${eOther.toExponential(2)}`);
  await assertWebGeneratorMatches(run, out, ["a blue circle", "a red square"]);
});
