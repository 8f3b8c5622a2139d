/**
 * Teachers in other conventions, each the same network written another way, which tbcm must see
 * as one teacher (the same flow, the same distillation), and whose exported student must answer in
 * the teacher's own convention:
 * - `transformer.noise_at: 0` (Meta's flow_matching, torchcfm): x_t = t·x0 + (1 − t)·ε, noise at
 *   t = 0, velocity d x/dt = x0 − ε. B takes t = 1 − s and answers −v (A behind a Sub and a Neg).
 * - `prediction: "x0"` (x-prediction): C answers the clean latent x_s − s·v (A behind a Mul and a Sub).
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
import { sampleImages } from "../../src/run/sample.ts";

const dir = tempDir("tbcm-noise-at-");
const PROMPTS = ["", "a red square", "a blue circle"];

/** The network v(latent [B, 2, 4, 4], 1000·s [B], cond [B, 6]); "reversed": takes t = 1 − s and answers −v; "x0": answers x_s − s·v. */
function denoiser(form: "v" | "reversed" | "x0"): Uint8Array {
  const reversed = form === "reversed";
  const body = [
    node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
    node("MatMul", ["h", "w_in"], ["a"]),
    node("MatMul", ["cond", "w_c"], ["b"]),
    node("Unsqueeze", [reversed ? "ts" : "time", "axis1"], ["t1"]),
    node("Mul", ["t1", "w_time"], ["tt"]),
    node("Sin", ["tt"], ["temb"]),
    node("Sum", ["a", "b", "temb"], ["z"]),
    node("Tanh", ["z"], ["zz"]),
    node("MatMul", ["zz", "w_out"], ["o"]),
    node("Reshape", ["o", "shape"], [reversed ? "v" : "out"]),
  ];
  const nodes = reversed ? [node("Sub", ["one", "time"], ["s"]), node("Mul", ["s", "thousand"], ["ts"]), ...body, node("Neg", ["v"], ["out"])]
    : form === "x0" ? [...body.slice(0, -1), node("Reshape", ["o", "shape"], ["v"]), node("Div", ["time", "thousand"], ["s"]), node("Reshape", ["s", "col4"], ["s4"]),
      node("Mul", ["v", "s4"], ["sv"]), node("Sub", ["latent", "sv"], ["out"])]
    : body;
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: `form_${form}`,
      nodes,
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)),
        float32Tensor("w_time", [1, 16], values(16, 4, 0.003)), float32Tensor("w_out", [16, 32], values(512, 5)),
        float32Tensor("one", [], [1]), float32Tensor("thousand", [], [1000]),
        int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]), int64Tensor("col4", [4], [-1, 1, 1, 1]),
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "time", elemType: DataType.FLOAT, shape: ["batch"] },
        { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
      ],
      outputs: [{ name: "out", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  });
}

const cond = values(PROMPTS.length * 6, 7, 1);
function bundle(name: string, form: "v" | "reversed" | "x0"): string {
  const b = join(dir, name);
  mkdirSync(b);
  writeFileSync(join(b, "transformer.onnx"), denoiser(form));
  saveSafetensors(join(b, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 6], data: cond }]]), { prompts: JSON.stringify(PROMPTS) });
  writeFileSync(join(b, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
    transformer: {
      inputs: { latent: "latent", time: "time", condition: "cond" }, output: "out", prediction: form === "x0" ? "x0" : "flow_velocity", time_embedding: "temb",
      ...(form === "reversed" ? { noise_at: 0 } : { time_scale: 1000 }),
    },
    guidance_scales: [2, 3],
    vae_decoder: { input: "z", output: "img" },
  }));
  writeFileSync(join(b, "vae_decoder.onnx"), encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "decoder", nodes: [node("Conv", ["z", "k"], ["c"]), node("Tanh", ["c"], ["img"])],
      initializers: [float32Tensor("k", [1, 2, 1, 1], values(2, 9, 1))],
      inputs: [{ name: "z", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
      outputs: [{ name: "img", elemType: DataType.FLOAT, shape: ["batch", 1, 4, 4] }],
    },
  }));
  return b;
}
const A = bundle("noise-at-1", "v"), B = bundle("noise-at-0", "reversed"), X = bundle("x0", "x0");
const rowsOf = (idx: number[]) => Float32Array.from(idx.flatMap((p) => [...cond.subarray(6 * p, 6 * p + 6)]));
const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);

test("noise_at 0 and x0 prediction: the same network in another convention is the same flow velocity", () => {
  const idx = [1, 2, 0], s = [0.95, 0.4, 0.1];
  const x = normal(key(3), 3 * 32);
  const flow = (dirName: string) => {
    const b = loadBundle(dirName);
    return b.flow(b.paramList(), np.array(x).reshape([3, 32]), np.array(Float32Array.from(s)).reshape([3, 1]), np.array(rowsOf(idx)).reshape([3, 6]))[0].dataSync() as Float32Array;
  };
  const a = flow(A), b = flow(B), x0 = flow(X);
  const e = maxRel(b, a), ex = maxRel(x0, a);
  assert.ok(e < 1e-4, `noise_at 0: relative difference ${e.toExponential(2)}`);
  assert.ok(ex < 1e-4, `x0: relative difference ${ex.toExponential(2)}`);
  assert.ok(a.some((v) => Math.abs(v) > 0.1), "a velocity that is not ~0");
});

test("noise_at 0: distils as its twin does, and its export answers in its own convention (onnxruntime and plain JavaScript)", async () => {
  const runA = join(dir, "run-a"), runB = join(dir, "run-b");
  const ra = await distill(shortRunConfig(A), runA), rb = await distill(shortRunConfig(B), runB);
  assert.ok(rb.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${rb.metrics.teacher_import_rel_error}`);
  for (const k of ["consistency_rel_mse_1step", "consistency_rel_mse_2step", "fd_latent_1step_vs_teacher"]) {
    assert.ok(Math.abs(rb.metrics[k] - ra.metrics[k]) <= 1e-3 * Math.abs(ra.metrics[k]) + 1e-6, `${k}: ${rb.metrics[k]} against ${ra.metrics[k]}`);
  }
  const out = join(dir, "export-b");
  const manifest = await exportStudent(runB, out) as { noise_at: number };
  assert.equal(manifest.noise_at, 0);
  // the file answers −v at time 1 − s, v being B's student's flow velocity at s
  const idx = [2, 1], s = [1, 0.3];
  const x = normal(key(8), 2 * 32);
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  const got = (await session.run({
    latent: new ort.Tensor("float32", x, [2, 2, 4, 4]), time: new ort.Tensor("float32", Float32Array.from(s, (v) => 1 - v), [2]),
    cond: new ort.Tensor("float32", rowsOf(idx), [2, 6]),
  })).out.data as Float32Array;
  await session.release();
  const student = loadParamTree(join(runB, "student.safetensors")).params as never;
  const [v, lv] = bundleFlowStudent(loadBundle(B))(tree.ref(student), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), np.array(rowsOf(idx)).reshape([2, 6]), np.full([2, 1], 2));
  lv.dispose();
  tree.dispose(student);
  const e = maxRel(got, (v.dataSync() as Float32Array).map((a) => -a));
  assert.ok(e < 1e-4, `exported student: relative error ${e.toExponential(2)}`);
  await assertWebGeneratorMatches(runB, out, ["a blue circle", "a red square"]);
  // and the twin's students draw the same images
  for (const steps of [1, 2]) {
    const [b, a] = [await sampleImages({ run: runB, prompts: ["a blue circle"], steps, seed: 5 }), await sampleImages({ run: runA, prompts: ["a blue circle"], steps, seed: 5 })];
    const dt = b.pixels.reduce((m, x, i) => Math.max(m, Math.abs(x - a.pixels[i])), 0);
    assert.ok(dt < 1e-3, `against the twin's images at ${steps} steps: max |Δ| ${dt.toExponential(2)}`);
  }
});

test("x0 prediction: distils as its twin does, and its export answers the clean latent (onnxruntime and plain JavaScript)", async () => {
  const runA = join(dir, "run-a2"), runX = join(dir, "run-x");
  const ra = await distill(shortRunConfig(A), runA), rx = await distill(shortRunConfig(X), runX);
  assert.ok(rx.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${rx.metrics.teacher_import_rel_error}`);
  for (const k of ["consistency_rel_mse_1step", "consistency_rel_mse_2step", "fd_latent_1step_vs_teacher"]) {
    assert.ok(Math.abs(rx.metrics[k] - ra.metrics[k]) <= 1e-3 * Math.abs(ra.metrics[k]) + 1e-6, `${k}: ${rx.metrics[k]} against ${ra.metrics[k]}`);
  }
  const out = join(dir, "export-x");
  assert.equal((await exportStudent(runX, out) as { prediction: string }).prediction, "x0");
  const idx = [2, 1], s = [1, 0.3];
  const x = normal(key(8), 2 * 32);
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  const got = (await session.run({
    latent: new ort.Tensor("float32", x, [2, 2, 4, 4]), time: new ort.Tensor("float32", Float32Array.from(s, (v) => 1000 * v), [2]),
    cond: new ort.Tensor("float32", rowsOf(idx), [2, 6]),
  })).out.data as Float32Array;
  await session.release();
  const student = loadParamTree(join(runX, "student.safetensors")).params as never;
  const [v, lv] = bundleFlowStudent(loadBundle(X))(tree.ref(student), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), np.array(rowsOf(idx)).reshape([2, 6]), np.full([2, 1], 2));
  lv.dispose();
  tree.dispose(student);
  const vs = v.dataSync() as Float32Array;
  const e = maxRel(got, x.map((xi, j) => xi - s[Math.floor(j / 32)] * vs[j]));
  assert.ok(e < 1e-4, `exported student: relative error ${e.toExponential(2)}`);
  await assertWebGeneratorMatches(runX, out, ["a blue circle", "a red square"]);
});
