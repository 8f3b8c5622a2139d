/**
 * A convolutional teacher (a UNet's shape: a 3×3 Conv, GroupNorm, SiLU, a strided Conv down, a
 * ConvTranspose up, a skip, class-label conditioning): the training step differentiates through
 * the convs twice (the JVP of the sCM tangent, then the gradient), and ONNX Runtime runs them as
 * Conv nodes (the conv primitive lowered) while jax-js's own backend runs im2col. The two
 * executors must train the same student: the same logged losses and the same metrics.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { parseConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, attrInts, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-conv-teacher-");
const PROMPTS = ["", "zero", "one", "two"];

const bundle = join(dir, "bundle");
mkdirSync(bundle);
// x [B, 2, 8, 8], t [B], y [B] (int64 class, 3 = null) → v [B, 2, 8, 8]
// (opset 21: GroupNormalization's scale and bias per channel; at 18 they are per group, and onnxruntime refuses [8])
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 21, irVersion: 10,
  graph: {
    name: "tiny_unet",
    nodes: [
      node("Conv", ["x", "w1", "b1"], ["h1"], [attrInts("pads", [1, 1, 1, 1])]), // [B, 8, 8, 8]
      node("Unsqueeze", ["t", "axes123"], ["t4"]),
      node("Mul", ["t4", "w_t"], ["tt"]), node("Sin", ["tt"], ["temb"]), // [B, 8, 1, 1]
      node("Gather", ["emb", "y"], ["e"]), node("Unsqueeze", ["e", "axes23"], ["e4"]), // [B, 8, 1, 1]
      node("Sum", ["h1", "temb", "e4"], ["h2"]),
      node("GroupNormalization", ["h2", "gs", "gb"], ["g"], [attrInt("num_groups", 2)]),
      node("Sigmoid", ["g"], ["gsig"]), node("Mul", ["g", "gsig"], ["a"]), // SiLU
      node("Conv", ["a", "w2"], ["down"], [attrInts("strides", [2, 2]), attrInts("pads", [1, 1, 1, 1])]), // [B, 8, 4, 4]
      node("Tanh", ["down"], ["dt"]),
      node("ConvTranspose", ["dt", "w3"], ["up"], [attrInts("strides", [2, 2]), attrInts("pads", [1, 1, 1, 1]), attrInts("output_padding", [1, 1])]), // [B, 8, 8, 8]
      node("Add", ["up", "a"], ["skip"]),
      node("Conv", ["skip", "w4"], ["v"], [attrInts("pads", [1, 1, 1, 1]), attrInt("group", 2)]), // [B, 2, 8, 8]
    ],
    initializers: [
      float32Tensor("w1", [8, 2, 3, 3], values(144, 1, 0.4)), float32Tensor("b1", [8], values(8, 2, 0.1)),
      float32Tensor("w_t", [1, 8, 1, 1], values(8, 3, 2)), float32Tensor("emb", [4, 8], values(32, 4, 0.5)),
      float32Tensor("gs", [8], values(8, 5, 1).map((v) => 1 + 0.2 * v)), float32Tensor("gb", [8], values(8, 6, 0.1)),
      float32Tensor("w2", [8, 8, 3, 3], values(576, 7, 0.15)), float32Tensor("w3", [8, 8, 3, 3], values(576, 8, 0.15)),
      float32Tensor("w4", [2, 4, 3, 3], values(72, 9, 0.3)),
      int64Tensor("axes123", [3], [1, 2, 3]), int64Tensor("axes23", [2], [2, 3]),
    ],
    inputs: [
      { name: "x", elemType: DataType.FLOAT, shape: ["batch", 2, 8, 8] },
      { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "y", elemType: DataType.INT64, shape: ["batch"] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 8, 8] }],
  },
}));
const head = new TextEncoder().encode(JSON.stringify({ __metadata__: { prompts: JSON.stringify(PROMPTS) }, embeddings: { dtype: "I64", shape: [4], data_offsets: [0, 32] } }));
const table = new Uint8Array(8 + head.length + 32);
new DataView(table.buffer).setBigUint64(0, BigInt(head.length), true);
table.set(head, 8);
table.set(new Uint8Array(BigInt64Array.of(3n, 0n, 1n, 2n).buffer), 8 + head.length);
writeFileSync(join(bundle, "prompt_embeddings.safetensors"), table);
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 8, 8],
  transformer: { inputs: { latent: "x", time: "t", condition: "y" }, output: "v", prediction: "flow_velocity", noise_at: 0 },
  guidance_scales: [2],
}));

test("a convolutional teacher trains the same student on ONNX Runtime (Conv nodes) and on jax-js (im2col): the same losses and metrics", async () => {
  const config = (executor: "onnx" | "jax") => parseConfig({
    method: "tbcm", seed: 3, executor, teacher: { kind: "onnx", dir: bundle },
    route: { shift: 2.5, steps: 4 }, loss: { warmup: 2, endpoint_weight: 10 }, optim: { kind: "adamw", lr: 1e-3 },
    train: { steps: 4, prompts_per_step: 2, log_every: 1, eval_every: 4, checkpoint_every: 4 },
    eval: { samples: 16, curve_noises: 2 },
  });
  const runs = { onnx: join(dir, "run-onnx"), jax: join(dir, "run-jax") };
  const ro = await distill(config("onnx"), runs.onnx), rj = await distill(config("jax"), runs.jax);
  assert.ok(ro.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${ro.metrics.teacher_import_rel_error}`);
  assert.ok(rj.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${rj.metrics.teacher_import_rel_error}`);
  const losses = (run: string) => readFileSync(join(run, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((e) => typeof e.loss === "number").map((e) => e.loss as number);
  const [lo, lj] = [losses(runs.onnx), losses(runs.jax)];
  assert.equal(lo.length, 4);
  console.log(`# losses onnx ${lo.map((v) => v.toFixed(6)).join(" ")}; jax ${lj.map((v) => v.toFixed(6)).join(" ")}`);
  assert.deepEqual(lo.map((v) => Number.isFinite(v)), [true, true, true, true]);
  lo.forEach((v, i) => assert.ok(Math.abs(v - lj[i]) <= 1e-3 * Math.abs(lj[i]) + 1e-4, `step ${i + 1} loss: onnx ${v} against jax ${lj[i]}`));
  for (const k of ["consistency_rel_mse_1step", "consistency_rel_mse_2step", "fd_latent_1step_vs_teacher"]) {
    assert.ok(Math.abs(ro.metrics[k] - rj.metrics[k]) <= 2e-3 * Math.abs(rj.metrics[k]) + 1e-5, `${k}: onnx ${ro.metrics[k]} against jax ${rj.metrics[k]}`);
  }
});
