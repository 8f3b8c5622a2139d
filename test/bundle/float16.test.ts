/**
 * A teacher exported in half precision (`pipe.transformer.half()` before torch.onnx.export): its
 * latent, time and output are float16, and so are its decoder's input and output. tbcm computes
 * in float32; the exported student keeps the teacher's float16 contract (casts in the file), and
 * `loadBundleGenerator` builds and reads float16 tensors for it and for the decoder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, assertWebGeneratorMatches, values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-float16-");
const PROMPTS = ["", "a red square", "a blue circle"];
const toFloat = (x: string, y: string) => node("Cast", [x], [y], [attrInt("to", DataType.FLOAT)]);
const toHalf = (x: string, y: string) => node("Cast", [x], [y], [attrInt("to", DataType.FLOAT16)]);

const bundle = join(dir, "bundle");
mkdirSync(bundle);
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "half",
    nodes: [
      toFloat("latent", "lf"), toFloat("t", "tf"),
      node("Flatten", ["lf"], ["h"], [attrInt("axis", 1)]), node("MatMul", ["h", "w_in"], ["a"]), node("MatMul", ["cond", "w_c"], ["b"]),
      node("Unsqueeze", ["tf", "axis1"], ["t1"]), node("Mul", ["t1", "w_time"], ["tt"]), node("Sin", ["tt"], ["temb"]),
      node("Sum", ["a", "b", "temb"], ["z"]), node("Tanh", ["z"], ["zz"]), node("MatMul", ["zz", "w_out"], ["o"]),
      node("Reshape", ["o", "shape"], ["of"]), toHalf("of", "v"),
    ],
    initializers: [
      float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)),
      float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
      int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
    ],
    inputs: [
      { name: "latent", elemType: DataType.FLOAT16, shape: ["batch", 2, 4, 4] },
      { name: "t", elemType: DataType.FLOAT16, shape: ["batch"] },
      { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT16, shape: ["batch", 2, 4, 4] }],
  },
}));
writeFileSync(join(bundle, "vae_decoder.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "decoder_half",
    nodes: [toFloat("z", "zf"), node("Conv", ["zf", "k"], ["c"]), node("Sigmoid", ["c"], ["rf"]), toHalf("rf", "rgb")],
    initializers: [float32Tensor("k", [3, 2, 1, 1], values(6, 9, 1))],
    inputs: [{ name: "z", elemType: DataType.FLOAT16, shape: ["batch", 2, 4, 4] }],
    outputs: [{ name: "rgb", elemType: DataType.FLOAT16, shape: ["batch", 3, 4, 4] }],
  },
}));
const cond = values(PROMPTS.length * 6, 7, 1);
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 6], data: cond }]]), { prompts: JSON.stringify(PROMPTS) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "latent", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity" },
  guidance_scales: [2], vae_decoder: { input: "z", output: "rgb", output_range: [0, 1] },
}));

test("a float16 teacher: distilled in float32, its student exported in the teacher's float16 contract, drawn in plain JavaScript", async () => {
  const run = join(dir, "run");
  const r = await distill(shortRunConfig(bundle), run);
  assert.ok(r.metrics.teacher_import_rel_error < 0.02, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  const out = join(dir, "export");
  const manifest = await exportStudent(run, out) as unknown as { input_types: Record<string, string>; output_type: string; vae_decoder: { input_type: string } };
  assert.deepEqual(manifest.input_types, { latent: "float16", t: "float16" });
  assert.equal(manifest.output_type, "float16");
  assert.equal(manifest.vae_decoder.input_type, "float16");
  // the file takes and gives float16, as the teacher does; its values are the student's to float16 precision
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  const idx = [2, 1], s = [1, 0.5];
  const x = normal(key(8), 2 * 32);
  const asHalf = new Float32Array(x.length);
  const h = (await (await ort.InferenceSession.create(encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: { name: "to_half", nodes: [toHalf("a", "b")], initializers: [], inputs: [{ name: "a", elemType: DataType.FLOAT, shape: [64] }], outputs: [{ name: "b", elemType: DataType.FLOAT16, shape: [64] }] },
  }))).run({ a: new ort.Tensor("float32", x, [64]) })).b;
  const res = await session.run({
    latent: new ort.Tensor("float16", h.data as Uint16Array, [2, 2, 4, 4]), t: new ort.Tensor("float16", Uint16Array.of(0x3c00, 0x3800), [2]),
    cond: new ort.Tensor("float32", Float32Array.from(idx.flatMap((p) => [...cond.subarray(6 * p, 6 * p + 6)])), [2, 6]),
  });
  await session.release();
  assert.equal(res.v.type, "float16");
  // float16 bits → numbers
  const half = (b: number) => (b & 0x8000 ? -1 : 1) * ((b >> 10) & 0x1f ? (1 + (b & 0x3ff) / 1024) * 2 ** (((b >> 10) & 0x1f) - 15) : (b & 0x3ff) * 2 ** -24);
  (h.data as Uint16Array).forEach((b, i) => (asHalf[i] = half(b)));
  const got = Float32Array.from(res.v.data as Uint16Array, half);
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const [v, lv] = bundleFlowStudent(loadBundle(bundle))(tree.ref(student), np.array(asHalf).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]),
    np.array(Float32Array.from(idx.flatMap((p) => [...cond.subarray(6 * p, 6 * p + 6)]))).reshape([2, 6]), np.full([2, 1], 2));
  lv.dispose();
  tree.dispose(student);
  const want = v.dataSync() as Float32Array;
  const e = got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i]) / (Math.abs(want[i]) + 0.05)), 0);
  assert.ok(e < 2e-3, `exported student in float16: relative error ${e.toExponential(2)}`);
  await assertWebGeneratorMatches(run, out, ["a blue circle", "a red square"], 1e-3); // float16 rounding: 3e-4 here
});
