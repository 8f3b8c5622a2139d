/**
 * `transformer.time_embedding: "auto"` (src/bundle/timeEmbedding.ts) finds the tensor a person
 * names by reading the graph: on the Sana-style fixture (the timestep MLP's last Gemm, found by
 * hand from its weight's name) and on the shipped teacher's bundle (the tensor its export names
 * "time_embedding", where the stack's student adds its guidance embedding). A denoiser whose time
 * meets the latent with no embedding between is a one-line error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { exportTeacherBundle } from "../../src/bundle/exportTeacher.ts";
import { readOnnxFile } from "../../src/onnx/reader.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { ConfigError } from "../../src/config/schema.ts";
import { encodeModel, float32Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-time-embedding-");
const FIXTURE = "test/fixtures/onnx/denoiser.onnx";

/** A copy of a bundle's files with teacher.json's time_embedding set to "auto". */
function withAuto(from: string, to: string, files: string[]): string {
  mkdirSync(to, { recursive: true });
  for (const f of files) copyFileSync(join(from, f), join(to, f));
  const manifest = JSON.parse(readFileSync(join(from, "teacher.json"), "utf8"));
  manifest.transformer.time_embedding = "auto";
  writeFileSync(join(to, "teacher.json"), JSON.stringify(manifest));
  return to;
}

test("auto finds the Sana-style fixture's time embedding (the timestep MLP's output)", () => {
  const b = join(dir, "fixture");
  mkdirSync(b);
  copyFileSync(FIXTURE, join(b, "transformer.onnx"));
  saveSafetensors(join(b, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [2, 8, 16], data: values(256, 1) }]]), { prompts: JSON.stringify(["", "a"]) });
  writeFileSync(join(b, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1", latent_shape: [4, 8, 8],
    transformer: { inputs: { latent: "x", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity", time_embedding: "auto" },
    guidance_scales: [2, 3],
  }));
  const byHand = readOnnxFile(FIXTURE).graph.nodes.find((n) => n.inputs.includes("t_embed.2.weight"))!.outputs[0];
  assert.equal(loadBundle(b).manifest.transformer.timeEmbedding, byHand);
});

test("auto finds the shipped teacher's time embedding, where its own export names it", async () => {
  const shipped = join(dir, "shipped");
  await exportTeacherBundle(shipped);
  const named = loadBundle(shipped).manifest.transformer.timeEmbedding;
  assert.equal(named, "time_embedding");
  const auto = withAuto(shipped, join(dir, "shipped-auto"), ["transformer.onnx", "prompt_embeddings.safetensors"]);
  assert.equal(loadBundle(auto).manifest.transformer.timeEmbedding, named);
});

test("auto on a denoiser whose time meets the latent with no embedding between: one line saying what to do", () => {
  const b = join(dir, "raw-time");
  mkdirSync(b);
  // v = tanh(latent·W + t) : the time is added as it comes
  writeFileSync(join(b, "transformer.onnx"), encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "raw_time",
      nodes: [node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]), node("MatMul", ["h", "w"], ["a"]), node("Add", ["a", "t"], ["z"]), node("Tanh", ["z"], ["v"])],
      initializers: [float32Tensor("w", [4, 4], values(16, 1))],
      inputs: [{ name: "latent", elemType: DataType.FLOAT, shape: ["batch", 4] }, { name: "t", elemType: DataType.FLOAT, shape: ["batch", 1] }],
      outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 4] }],
    },
  }));
  writeFileSync(join(b, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1", latent_shape: [4],
    transformer: { inputs: { latent: "latent", time: "t" }, output: "v", prediction: "flow_velocity", time_embedding: "auto" },
  }));
  assert.throws(() => loadBundle(b), (e: Error) => e instanceof ConfigError && !e.message.includes("\n")
    && /"auto" found no tensor \[batch, W\] computed from the time input "t" alone .*; name the tensor \(as Netron shows it\) or leave time_embedding out/.test(e.message));
});
