import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { loadConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent, loadStudent, sample } from "../../src/index.ts";
import type { ExportManifest } from "../../src/gmm/export.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";
import { tempDir } from "../tempDir.ts";

test("the exported 1-step generator, run by onnxruntime-node from the file, reproduces sample()", async () => {
  const run = tempDir("tbcm-export-");
  await distill(loadConfig(new URL("../fixtures/tiny.yaml", import.meta.url).pathname), run);
  const out = join(run, "export");
  const manifest = await exportStudent(run, out, 3) as ExportManifest;
  assert.deepEqual(manifest.inputs.map((i) => i.shape), [[3, 4], [3, 3], [3, 1]]);
  assert.deepEqual(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).timesteps, [Math.PI / 2, 0]);
  // Standard ops only: every node is in the default ONNX domain (no com.microsoft contrib ops).
  assert.ok(Object.keys(manifest.op_counts).every((op) => /^[A-Z][A-Za-z]+$/.test(op)));

  const prompts = ["prompt 0", "prompt 2", "prompt 1"];
  const seed = 9, w = 4.5;
  const expected = sample({ student: loadStudent(run), prompts, steps: 1, seed, guidance: w });
  const session = await ort.InferenceSession.create(join(out, "generator.onnx"));
  const cond = new Float32Array(9);
  [0, 2, 1].forEach((p, b) => (cond[b * 3 + p] = 1));
  const result = await session.run({
    noise: new ort.Tensor("float32", normal(foldIn(key(seed), 0), 12), [3, 4]), // the noise sample() draws
    cond: new ort.Tensor("float32", cond, [3, 3]),
    guidance: new ort.Tensor("float32", new Float32Array(3).fill(w), [3, 1]),
  });
  const got = result.latent.data as Float32Array;
  expected.forEach((row, b) => row.forEach((v, j) => assert.ok(Math.abs(got[b * 4 + j] - v) < 1e-4 * Math.max(1, Math.abs(v)), `${got[b * 4 + j]} vs ${v}`)));
  await session.release();
});
