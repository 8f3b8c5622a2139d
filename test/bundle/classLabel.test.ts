/**
 * A class-conditional teacher, as research code writes one (SiT's and torchcfm's conditional
 * nets): the condition is an int64 class label y [B] (no more axes), looked up in the network's
 * own embedding table (`nn.Embedding(y)`: an ONNX Gather whose indices arrive at run time), and
 * the "empty prompt" is the null class that CFG dropout trained. The prompt table holds one label
 * per prompt ([P], I64). tbcm distils it, and the lookup trains (a one-hot contraction, lowerable).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { parseConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-class-label-");
const PROMPTS = ["", "t-shirt", "trousers", "sneaker"];
const LABELS = [3, 0, 1, 2]; // the empty prompt is the null class 3

const bundle = join(dir, "bundle");
mkdirSync(bundle);
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "class_conditional",
    nodes: [
      node("Flatten", ["x"], ["h"], [attrInt("axis", 1)]),
      node("MatMul", ["h", "w_in"], ["a"]),
      node("Gather", ["class_emb", "y"], ["e"]), // nn.Embedding(4, 16)(y)
      node("Unsqueeze", ["t", "axis1"], ["t1"]),
      node("Mul", ["t1", "w_time"], ["tt"]),
      node("Sin", ["tt"], ["temb"]),
      node("Sum", ["a", "e", "temb"], ["z"]),
      node("Tanh", ["z"], ["zz"]),
      node("MatMul", ["zz", "w_out"], ["o"]),
      node("Reshape", ["o", "shape"], ["v"]),
    ],
    initializers: [
      float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("class_emb", [4, 16], values(64, 2, 1)),
      float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
      int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
    ],
    inputs: [
      { name: "x", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
      { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "y", elemType: DataType.INT64, shape: ["batch"] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
  },
}));
// the table: one int64 label per prompt, [P]
const head = new TextEncoder().encode(JSON.stringify({ __metadata__: { prompts: JSON.stringify(PROMPTS) }, embeddings: { dtype: "I64", shape: [PROMPTS.length], data_offsets: [0, 8 * PROMPTS.length] } }));
const table = new Uint8Array(8 + head.length + 8 * PROMPTS.length);
new DataView(table.buffer).setBigUint64(0, BigInt(head.length), true);
table.set(head, 8);
table.set(new Uint8Array(BigInt64Array.from(LABELS, BigInt).buffer), 8 + head.length);
writeFileSync(join(bundle, "prompt_embeddings.safetensors"), table);
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "x", time: "t", condition: "y" }, output: "v", prediction: "flow_velocity", noise_at: 0 },
  guidance_scales: [2],
}));

const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);

test("a class label [B] (int64) as the condition: the lookup by a run-time index equals onnxruntime's, and the run trains the embedding", async () => {
  const b = loadBundle(bundle);
  assert.deepEqual([...b.table.shape], []);
  const idx = [1, 2, 3, 0, 2], s = [0.9, 0.4, 0.65, 0.2, 0.5];
  const x = normal(key(3), idx.length * 32);
  const [v] = b.flow(b.paramList(), np.array(x).reshape([idx.length, 32]), np.array(Float32Array.from(s)).reshape([idx.length, 1]), np.array(Float32Array.from(idx, (p) => LABELS[p])));
  const session = await ort.InferenceSession.create(join(bundle, "transformer.onnx"));
  const feeds = (xs: Float32Array, ts: number[]) => ({
    x: new ort.Tensor("float32", xs, [idx.length, 2, 4, 4]), t: new ort.Tensor("float32", Float32Array.from(ts, (u) => 1 - u), [idx.length]), // noise at 0
    y: new ort.Tensor("int64", BigInt64Array.from(idx, (p) => BigInt(LABELS[p])), [idx.length]),
  });
  const want = (await session.run(feeds(x, s))).v.data as Float32Array;
  await session.release();
  const e = maxRel((v.dataSync() as Float32Array).map((a) => -a), want);
  assert.ok(e < 1e-4, `relative error ${e.toExponential(2)}`);

  const run = join(dir, "run");
  const cfg = parseConfig({
    method: "tbcm", seed: 1, executor: "onnx", teacher: { kind: "onnx", dir: bundle },
    route: { shift: 2.5, steps: 4 }, loss: { warmup: 2 }, optim: { kind: "adamw", lr: 1e-2 },
    train: { steps: 3, prompts_per_step: 2, log_every: 1, eval_every: 3, checkpoint_every: 3 },
    eval: { samples: 16, curve_noises: 2 },
  });
  const r = await distill(cfg, run);
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  const student = loadParamTree(join(run, "student.safetensors")).params as unknown as { graph: { ref: { dataSync(): Float32Array } }[] };
  const k = b.paramNames.indexOf("class_emb");
  const moved = student.graph[k].ref.dataSync().reduce((m, u, i) => Math.max(m, Math.abs(u - b.transformer.params.class_emb.data[i])), 0);
  assert.ok(moved > 1e-4, `the class embedding trains (moved ${moved.toExponential(2)})`);
  // the export takes the label as the teacher does: int64 [batch]
  const out = join(dir, "export");
  await exportStudent(run, out);
  const exported = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  const got = (await exported.run(feeds(x, s))).v.data as Float32Array;
  await exported.release();
  const [sv, lv] = bundleFlowStudent(b)(tree.ref(student as never), np.array(x).reshape([idx.length, 32]), np.array(Float32Array.from(s)).reshape([idx.length, 1]), np.array(Float32Array.from(idx, (p) => LABELS[p])), np.full([idx.length, 1], 2));
  lv.dispose();
  tree.dispose(student as never);
  const e2 = maxRel(got, (sv.dataSync() as Float32Array).map((a) => -a));
  assert.ok(e2 < 1e-4, `exported student: relative error ${e2.toExponential(2)}`);

});

test("a class label the network's embedding does not have is a one-line error naming the prompt, before training (not a silent row of zeros)", async () => {
  const bad = join(dir, "bad-labels");
  mkdirSync(bad);
  for (const f of ["transformer.onnx", "teacher.json"]) writeFileSync(join(bad, f), readFileSync(join(bundle, f)));
  const head = new TextEncoder().encode(JSON.stringify({ __metadata__: { prompts: JSON.stringify(PROMPTS) }, embeddings: { dtype: "I64", shape: [PROMPTS.length], data_offsets: [0, 8 * PROMPTS.length] } }));
  const t = new Uint8Array(8 + head.length + 8 * PROMPTS.length);
  new DataView(t.buffer).setBigUint64(0, BigInt(head.length), true);
  t.set(head, 8);
  t.set(new Uint8Array(BigInt64Array.from([3, 7, 9, 12], BigInt).buffer), 8 + head.length); // classes 7, 9, 12 of 4
  writeFileSync(join(bad, "prompt_embeddings.safetensors"), t);
  const cfg = parseConfig({ method: "tbcm", executor: "onnx", teacher: { kind: "onnx", dir: bad }, route: { steps: 4 }, train: { steps: 40, prompts_per_step: 2, log_every: 1, eval_every: 40 }, eval: { samples: 16, curve_noises: 2 } });
  await assert.rejects(distill(cfg, join(dir, "bad-run")), (e: Error) => !e.message.includes("\n") && /the teacher's velocity is not finite for prompt "t-shirt"/.test(e.message));
});
