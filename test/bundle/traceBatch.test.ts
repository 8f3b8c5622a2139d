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
import { encodeModel, float32Tensor, int64Tensor, attrInt, attrInts, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, values, node } from "./shortRun.ts";

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
  const manifest = exportStudent(run, out) as { trace_batch: number };
  assert.ok(manifest.trace_batch % 11 !== 0 && [2, 4, 6, 16, 32].every((d) => d % manifest.trace_batch !== 0), `traced at ${manifest.trace_batch}`);
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const flow = bundleFlowStudent(loadBundle(bundle));
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  try {
    for (const B of [1, 2, 3, 11]) {
      const x = normal(key(B), B * 32), s = Float32Array.from({ length: B }, (_, i) => 1 - i / (B + 1));
      const rows = Float32Array.from({ length: B * TOKENS * 6 }, (_, i) => cond[(TOKENS * 6 + i) % cond.length]);
      const got = (await session.run({
        latent: new ort.Tensor("float32", x, [B, 2, 4, 4]), t: new ort.Tensor("float32", s, [B]), cond: new ort.Tensor("float32", rows, [B, TOKENS, 6]),
      })).v.data as Float32Array;
      const [v, lv] = flow(tree.ref(student), np.array(x).reshape([B, 32]), np.array(s).reshape([B, 1]), np.array(rows).reshape([B, TOKENS, 6]), np.full([1, 1], 2));
      lv.dispose();
      const want = v.dataSync() as Float32Array;
      const e = got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i])), 0);
      assert.ok(e < 1e-5, `batch ${B}: max |Δ| ${e.toExponential(2)}`);
    }
  } finally {
    await session.release();
    tree.dispose(student);
  }
});
