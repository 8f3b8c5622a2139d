/**
 * A teacher whose condition is several tensors (SD3-style: token embeddings and a pooled
 * embedding as two inputs): `transformer.inputs.condition` lists both, the table holds one tensor
 * for each, named as the input. The loop sees one row per prompt (their flattened
 * concatenation); the denoiser gets each tensor in its own shape, and the exported student takes
 * them as the teacher does.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { parseConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, attrInts, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, assertWebGeneratorMatches, rgbDecoder, values, node } from "./shortRun.ts";
import { loadBundleDecoder } from "../../src/bundle/decoder.ts";

const dir = tempDir("tbcm-conditions-");
const PROMPTS = ["", "a red square", "a blue circle"];
const T = 1000; // diffusers' time convention: timestep = 1000·s

/** v(latent [B, 2, 4, 4], timestep [B], tokens [B, 3, 5], pooled [B, 6]), its time embedding at "temb". */
function denoiser(): Uint8Array {
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "two_conditions",
      nodes: [
        node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
        node("MatMul", ["h", "w_in"], ["a"]),
        node("ReduceMean", ["tokens"], ["tm"], [attrInts("axes", [1]), attrInt("keepdims", 0)]),
        node("MatMul", ["tm", "w_tok"], ["b"]),
        node("MatMul", ["pooled", "w_pool"], ["c"]),
        node("Unsqueeze", ["timestep", "axis1"], ["t1"]),
        node("Mul", ["t1", "w_time"], ["tt"]),
        node("Sin", ["tt"], ["temb"]),
        node("Sum", ["a", "b", "c", "temb"], ["z"]),
        node("Tanh", ["z"], ["zz"]),
        node("MatMul", ["zz", "w_out"], ["o"]),
        node("Reshape", ["o", "shape"], ["velocity"]),
      ],
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_tok", [5, 16], values(80, 2)),
        float32Tensor("w_pool", [6, 16], values(96, 3)), float32Tensor("w_time", [1, 16], values(16, 4, 0.003)),
        float32Tensor("w_out", [16, 32], values(512, 5)),
        int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "timestep", elemType: DataType.FLOAT, shape: ["batch"] },
        { name: "tokens", elemType: DataType.FLOAT, shape: ["batch", 3, 5] },
        { name: "pooled", elemType: DataType.FLOAT, shape: ["batch", 6] },
      ],
      outputs: [{ name: "velocity", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  });
}

const bundle = join(dir, "bundle");
mkdirSync(bundle);
writeFileSync(join(bundle, "transformer.onnx"), denoiser());
const tokens = values(PROMPTS.length * 15, 6, 1), pooled = values(PROMPTS.length * 6, 7, 1);
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([
  ["tokens", { shape: [PROMPTS.length, 3, 5], data: tokens }],
  ["pooled", { shape: [PROMPTS.length, 6], data: pooled }],
]), { prompts: JSON.stringify(PROMPTS) });
const MANIFEST = {
  format: "tbcm-teacher-bundle-1",
  latent_shape: [2, 4, 4],
  transformer: {
    inputs: { latent: "latent", time: "timestep", condition: ["tokens", "pooled"] },
    output: "velocity", time_scale: T, prediction: "flow_velocity", time_embedding: "temb",
  },
  guidance_scales: [2, 3],
};
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({ ...MANIFEST, vae_decoder: { input: "z", output: "rgb", output_range: [0, 1] } }));
writeFileSync(join(bundle, "vae_decoder.onnx"), rgbDecoder());

/** Rows of prompts `idx` as the loop holds them: tokens then pooled, flattened. */
const rowsOf = (idx: number[]) => Float32Array.from(idx.flatMap((p) => [...tokens.subarray(15 * p, 15 * p + 15), ...pooled.subarray(6 * p, 6 * p + 6)]));
const feeds = (x: Float32Array, s: number[], idx: number[]) => ({
  latent: new ort.Tensor("float32", x, [idx.length, 2, 4, 4]),
  timestep: new ort.Tensor("float32", Float32Array.from(s, (v) => T * v), [idx.length]),
  tokens: new ort.Tensor("float32", Float32Array.from(idx.flatMap((p) => [...tokens.subarray(15 * p, 15 * p + 15)])), [idx.length, 3, 5]),
  pooled: new ort.Tensor("float32", Float32Array.from(idx.flatMap((p) => [...pooled.subarray(6 * p, 6 * p + 6)])), [idx.length, 6]),
});
const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);

test("several condition inputs: the table row of a prompt reaches each input in its own shape (teacher = onnxruntime on the file)", async () => {
  const b = loadBundle(bundle);
  assert.deepEqual(b.table.shape, [21]);
  assert.deepEqual(b.table.parts.map((p) => [p.name, [...p.shape]]), [["tokens", [3, 5]], ["pooled", [6]]]);
  const idx = [1, 2, 0], s = [0.9, 0.4, 0.65];
  const x = normal(key(3), 3 * 32);
  const [v] = b.flow(b.paramList(), np.array(x).reshape([3, 32]), np.array(Float32Array.from(s)).reshape([3, 1]), np.array(rowsOf(idx)).reshape([3, 21]));
  const session = await ort.InferenceSession.create(join(bundle, "transformer.onnx"));
  const want = (await session.run(feeds(x, s, idx))).velocity.data as Float32Array;
  await session.release();
  const e = maxRel(v.dataSync() as Float32Array, want);
  assert.ok(e < 1e-4, `relative error ${e.toExponential(2)}`);
});

test("several condition inputs: a short run, and the exported student takes them as the teacher does (in plain JavaScript too)", async () => {
  const run = join(dir, "run");
  const cfg = shortRunConfig(bundle);
  const r = await distill(cfg, run);
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  // no image evaluator in a bundle: the latent FD of the student's samples to the teacher's, at each step count
  for (const steps of [1, 2, 4]) assert.ok(r.metrics[`fd_latent_${steps}step_vs_teacher`] >= 0, `fd_latent_${steps}step_vs_teacher`);
  const out = join(dir, "export");
  await exportStudent(run, out);
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "timestep", "tokens", "pooled"]);
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const flow = bundleFlowStudent(loadBundle(bundle));
  const idx = [2, 1], s = [1, 0.5];
  const x = normal(key(8), 2 * 32);
  const got = (await session.run(feeds(x, s, idx))).velocity.data as Float32Array;
  await session.release();
  const [v, lv] = flow(tree.ref(student), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), np.array(rowsOf(idx)).reshape([2, 21]), np.full([2, 1], 2)); // default_guidance: the lower middle of [2, 3]
  lv.dispose();
  const e = maxRel(got, v.dataSync() as Float32Array);
  assert.ok(e < 1e-4, `exported student: relative error ${e.toExponential(2)}`);
  tree.dispose(student);
  // the export in plain JavaScript feeds each condition input from its own table tensor: sampleImages' images
  await assertWebGeneratorMatches(run, out, ["a blue circle", "a red square"]);
});

test("several condition inputs: a missing table tensor, a misnamed input, a tensor of the wrong shape are one line each", async () => {
  const bad = (name: string, manifest: object, table: [string, number[]][]) => {
    const d = join(dir, name);
    mkdirSync(d);
    writeFileSync(join(d, "transformer.onnx"), denoiser());
    saveSafetensors(join(d, "prompt_embeddings.safetensors"), new Map(table.map(([n, shape]) => [n, { shape, data: new Float32Array(shape.reduce((a, c) => a * c, 1)) }])), { prompts: JSON.stringify(PROMPTS) });
    writeFileSync(join(d, "teacher.json"), JSON.stringify(manifest));
    return d;
  };
  const fails = async (d: string, pattern: RegExp) => {
    const run = join(dir, `${d.split("/").pop()}-run`);
    await assert.rejects(distill(parseConfig({ teacher: { kind: "onnx", dir: d }, train: { steps: 1 } }), run), (e: Error) => !e.message.includes("\n") && pattern.test(e.message));
    assert.ok(!existsSync(run));
  };
  await fails(bad("no-pooled", MANIFEST, [["tokens", [3, 3, 5]]]), /has no tensor "pooled" \[P, \.\.\.\] \(one per condition input\)/);
  const misnamed = { ...MANIFEST, transformer: { ...MANIFEST.transformer, inputs: { ...MANIFEST.transformer.inputs, condition: ["tokens", "pool"] } } };
  await fails(bad("misnamed", misnamed, [["tokens", [3, 3, 5]], ["pool", [3, 6]]]), /key "transformer\.inputs\.condition": .* has no input "pool"/);
  await fails(bad("wrong-shape", MANIFEST, [["tokens", [3, 3, 5]], ["pooled", [3, 7]]]), /condition input "pooled" has shape \[batch, 6\], but its table tensor "pooled" has rows \[7\]/);
  const twice = { ...MANIFEST, transformer: { ...MANIFEST.transformer, inputs: { ...MANIFEST.transformer.inputs, condition: ["tokens", "tokens"] } } };
  await fails(bad("twice", twice, [["tokens", [3, 3, 5]]]), /key "transformer\.inputs\.condition": expected .* a list of up to 16 distinct input names/);
});

test("the decoder run as its own file in onnxruntime (executor onnx) draws what the importer's program draws (colour, and grey from 2 channels)", async () => {
  const grey = join(dir, "grey");
  mkdirSync(grey);
  for (const f of ["transformer.onnx", "prompt_embeddings.safetensors"]) writeFileSync(join(grey, f), readFileSync(join(bundle, f)));
  writeFileSync(join(grey, "teacher.json"), JSON.stringify({ ...MANIFEST, latent_scaling_factor: 0.5, latent_shift_factor: 0.1, vae_decoder: { input: "z", output: "two", output_range: [-1, 1] } }));
  writeFileSync(join(grey, "vae_decoder.onnx"), encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "decoder2",
      nodes: [node("Conv", ["z", "k"], ["c"]), node("Tanh", ["c"], ["two"])],
      initializers: [float32Tensor("k", [2, 2, 1, 1], values(4, 3, 1))],
      inputs: [{ name: "z", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
      outputs: [{ name: "two", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  }));
  const n = 11; // more than one chunk of the file's 8 rows
  const z = normal(key(4), n * 32);
  for (const [d, channels] of [[bundle, 3], [grey, 1]] as const) {
    const b = loadBundle(d);
    const file = loadBundleDecoder(b, "onnx"), program = loadBundleDecoder(b, "jax");
    const [a, c] = [await file.decode(z, n), await program.decode(z, n)];
    await file.dispose();
    await program.dispose();
    assert.equal(a.channels, channels);
    assert.deepEqual([a.channels, a.height, a.width, a.pixels.length], [c.channels, c.height, c.width, c.pixels.length]);
    const diff = a.pixels.reduce((m, v, i) => Math.max(m, Math.abs(v - c.pixels[i])), 0);
    assert.ok(diff < 1e-5, `${channels} channels: max |Δ| ${diff.toExponential(2)}`);
    assert.ok(a.pixels.some((v) => v > 0.05 && v < 0.95), "pixels inside the range, so the scaling is exercised");
  }
});
