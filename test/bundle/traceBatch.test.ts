/**
 * The export traces the student at one batch size and makes that axis symbolic. A teacher whose
 * condition has 11 tokens (CLIP's 77 and SD3's 154 are multiples of 11, the size it used to
 * trace at) and that moves the token axis first (a Transpose then a Reshape of tokens × (batch ·
 * features), as attention code does) must still answer at any batch: the export traces at a
 * batch that divides none of the teacher's sizes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, attrInts, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, values, node, assertExportAnswersAtBatches } from "./shortRun.ts";

const dir = tempDir("tbcm-trace-batch-");
const PROMPTS = ["", "a red square", "a blue circle"], TOKENS = 11;

const bundle = join(dir, "bundle");
mkdirSync(bundle);
// v(latent [B, 2, 4, 4], t [B], cond [B, 11, 6]): the tokens go first ([11, B, 6] → [11, B·6]), are summed, and come back as [B, 6]
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "tokens_first",
    nodes: [
      node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
      node("MatMul", ["h", "w_in"], ["a"]),
      node("Transpose", ["cond"], ["ct"], [attrInts("perm", [1, 0, 2])]),
      node("Reshape", ["ct", "tokens_rows"], ["cr"]),
      node("Mul", ["cr", "w_tok"], ["cw"]), // [11, B·6]·[11, 1]: a weight per token
      node("ReduceSum", ["cw", "axis0"], ["cs"], [attrInt("keepdims", 0)]),
      node("Reshape", ["cs", "rows6"], ["c6"]),
      node("MatMul", ["c6", "w_c"], ["b"]),
      node("Unsqueeze", ["t", "axis1"], ["t1"]), node("Mul", ["t1", "w_time"], ["tt"]), node("Sin", ["tt"], ["temb"]),
      node("Sum", ["a", "b", "temb"], ["z"]),
      node("Tanh", ["z"], ["zz"]),
      node("MatMul", ["zz", "w_out"], ["o"]),
      node("Reshape", ["o", "shape"], ["v"]),
    ],
    initializers: [
      float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)), float32Tensor("w_tok", [TOKENS, 1], values(TOKENS, 3, 1)),
      float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
      int64Tensor("tokens_rows", [2], [TOKENS, -1]), int64Tensor("rows6", [2], [-1, 6]),
      int64Tensor("axis0", [1], [0]), int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
    ],
    inputs: [
      { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
      { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "cond", elemType: DataType.FLOAT, shape: ["batch", TOKENS, 6] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
  },
}));
const cond = values(PROMPTS.length * TOKENS * 6, 7, 1);
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, TOKENS, 6], data: cond }]]), { prompts: JSON.stringify(PROMPTS) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "latent", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity", time_embedding: "temb" },
  guidance_scales: [2, 3],
}));

test("the export answers at every batch size, for a teacher with 11 tokens that it puts first", async () => {
  const run = join(dir, "run"), out = join(dir, "export");
  await distill(shortRunConfig(bundle), run);
  const manifest = await exportStudent(run, out) as { trace_batch: number };
  assert.ok(manifest.trace_batch % 11 !== 0 && [2, 4, 6, 16, 32].every((d) => d % manifest.trace_batch !== 0), `traced at ${manifest.trace_batch}`);
  await assertExportAnswersAtBatches(run, bundle, out, [1, 2, 3, 11], [TOKENS, 6], (B) => Float32Array.from({ length: B * TOKENS * 6 }, (_, i) => cond[(TOKENS * 6 + i) % cond.length]));
});
