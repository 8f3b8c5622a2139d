/**
 * Teachers that compute something from their batch size. torch writes an in-place assignment
 * over the batch (`h[:, 0] = y`) as ScatterND whose indices enumerate the batch rows (Shape →
 * Range); traced at one batch, that list would be fixed in the export. The export scatters per
 * sample, so its file answers at every batch. A value the export cannot keep symbolic (here the
 * batch row's own index, used as data) is refused with one line before anything is written, and
 * `tbcm check-bundle` says so before a run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { checkBundle } from "../../src/bundle/check.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType, type NodeProto } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, values, node, assertExportAnswersAtBatches } from "./shortRun.ts";

const dir = tempDir("tbcm-batch-from-shape-");
const PROMPTS = ["", "a red square", "a blue circle"];

/** v(latent [B, 2, 4, 4], t [B], cond [B, 6]) = reshape(tanh(h) W_out), h = latent·W_in + cond·W_c + sin(t·w), with `middle` between h and tanh. */
function writeBundle(name: string, middle: NodeProto[], inits: ReturnType<typeof float32Tensor>[]): string {
  const bundle = join(dir, name);
  mkdirSync(bundle);
  writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name,
      nodes: [
        node("Flatten", ["latent"], ["f"], [attrInt("axis", 1)]), node("MatMul", ["f", "w_in"], ["a"]), node("MatMul", ["cond", "w_c"], ["b"]),
        node("Unsqueeze", ["t", "axis1"], ["t1"]), node("Mul", ["t1", "w_time"], ["tt"]), node("Sin", ["tt"], ["temb"]),
        node("Sum", ["a", "b", "temb"], ["h"]),
        ...middle, // h → m
        node("Tanh", ["m"], ["z"]), node("MatMul", ["z", "w_out"], ["o"]), node("Reshape", ["o", "shape"], ["v"]),
      ],
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)), float32Tensor("w_time", [1, 16], values(16, 4, 3)),
        float32Tensor("w_out", [16, 32], values(512, 5)), int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]), ...inits,
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
        { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
      ],
      outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  }));
  saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 6], data: values(PROMPTS.length * 6, 7, 1) }]]), { prompts: JSON.stringify(PROMPTS) });
  writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
    transformer: { inputs: { latent: "latent", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity", time_embedding: "temb" },
    guidance_scales: [2, 3],
  }));
  return bundle;
}

// the batch rows 0 … B−1, as torch enumerates a `:` over the batch: Shape → Gather → Range → Unsqueeze
const batchRows = [
  node("Shape", ["h"], ["hs"]), node("Gather", ["hs", "zero"], ["nb"], [attrInt("axis", 0)]),
  node("Range", ["zero", "nb", "one"], ["rows"]), node("Unsqueeze", ["rows", "axis1"], ["rows1"]),
];
const counters = [int64Tensor("zero", [], [0]), int64Tensor("one", [], [1])];

// h[:, 3] = sum(h, 1): ScatterND with indices [[b, 3] for b < B]
const scatterBundle = writeBundle("scatter", [
  ...batchRows,
  node("Mul", ["rows1", "zero"], ["zeros1"]), node("Add", ["zeros1", "three"], ["col1"]),
  node("Concat", ["rows1", "col1"], ["idx"], [attrInt("axis", 1)]),
  node("ReduceSum", ["h", "axis1"], ["hsum"], [attrInt("keepdims", 0)]),
  node("ScatterND", ["h", "idx", "hsum"], ["m"]),
], [...counters, int64Tensor("three", [], [3])]);

// h + 0.01·(the row's index in the batch): the batch position as data
const rowIndexBundle = writeBundle("row-index", [
  ...batchRows, node("Cast", ["rows1"], ["rowsf"], [attrInt("to", DataType.FLOAT)]), node("Mul", ["rowsf", "small"], ["bump"]), node("Add", ["h", "bump"], ["m"]),
], [...counters, float32Tensor("small", [], Float32Array.of(0.01))]);

test("a teacher that assigns to one column of every sample (torch's h[:, 3] = y, a ScatterND over the batch rows) exports a file that answers at every batch", async () => {
  const run = join(dir, "run-scatter"), out = join(dir, "export-scatter");
  const r = await distill(shortRunConfig(scatterBundle), run);
  // the import agrees with onnxruntime on the teacher's own file (checked before training)
  assert.ok(r.metrics.teacher_import_rel_error < 1e-5, `${r.metrics.teacher_import_rel_error}`);
  const manifest = await exportStudent(run, out) as { trace_batch: number };
  await assertExportAnswersAtBatches(run, scatterBundle, out, [1, 2, 3, 2 * manifest.trace_batch + 1], [6], (B) => values(B * 6, 8, 1));
});

test("a teacher that reads its batch position as data is refused by the export in one line, and nothing is written", async () => {
  const run = join(dir, "run-row-index"), out = join(dir, "export-row-index");
  await distill(shortRunConfig(rowIndexBundle), run);
  await assert.rejects(exportStudent(run, out), (e: Error) => {
    assert.match(e.message, /^the exported student (answers with shape \[11,2,4,4\], not \[1,2,4,4\],) at batch 1 \(it was traced at batch 11\): the teacher computes a value from its batch size that the export fixes \(please report it .*\); nothing was written$/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  assert.ok(!existsSync(join(out, "transformer.onnx")) && !existsSync(join(out, "manifest.json")));
});

test("check-bundle says before a run whether its student will export: yes for the column assignment, no (a warning naming why) for the batch position", async () => {
  assert.equal((await checkBundle(scatterBundle)).studentExports, true);
  const r = await checkBundle(rowIndexBundle);
  assert.equal(r.studentExports, false);
  // (the other warning: this untrained network is no flow velocity at pure noise)
  const exportWarnings = r.warnings.filter((w) => /export/.test(w));
  assert.equal(exportWarnings.length, 1, JSON.stringify(r.warnings));
  assert.match(exportWarnings[0], /^a run will train, but its student will not export: the exported student answers with shape \[11,2,4,4\], not \[1,2,4,4\], at batch 1 \(it was traced at batch 11\): the teacher computes a value from its batch size that the export fixes \(please report it/);
});
