/**
 * An unconditional teacher (a denoiser with no condition input: `transformer.inputs.condition`
 * left out) is a teacher with one "prompt", the empty one, and nothing to guide. U holds its
 * condition as a frozen initializer c0; its twin C takes the same values as the condition input of
 * a table whose two entries ("" and "x") are both c0, so C's CFG velocity vu + w·(vc − vu) is U's
 * velocity at every scale. U must distil as C does (one pass per teacher step instead of two), and
 * its export (inputs latent and time only, no table in the bundle) must draw what `tbcm sample` draws.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { parseManifest } from "../../src/bundle/manifest.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { ConfigError } from "../../src/config/schema.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { sampleImages } from "../../src/run/sample.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, assertWebGeneratorMatches, rgbDecoder, values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-unconditional-");
const c0 = values(6, 7, 1);

/** v(latent [B, 2, 4, 4], t [B] (, cond [B, 6])): "u" reads the condition from its initializer c0 [1, 6] (broadcast over the batch). */
function denoiser(form: "u" | "c"): Uint8Array {
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: `form_${form}`,
      nodes: [
        node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
        node("MatMul", ["h", "w_in"], ["a"]),
        node("MatMul", [form === "u" ? "c0" : "cond", "w_c"], ["b"]),
        node("Unsqueeze", ["t", "axis1"], ["t1"]),
        node("Mul", ["t1", "w_time"], ["tt"]),
        node("Sin", ["tt"], ["temb"]),
        node("Sum", ["a", "b", "temb"], ["z"]),
        node("Tanh", ["z"], ["zz"]),
        node("MatMul", ["zz", "w_out"], ["o"]),
        node("Reshape", ["o", "shape"], ["v"]),
      ],
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)),
        float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
        ...(form === "u" ? [float32Tensor("c0", [1, 6], c0)] : []),
        int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
        ...(form === "c" ? [{ name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] }] : []),
      ],
      outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  });
}

function bundle(form: "u" | "c"): string {
  const b = join(dir, form);
  mkdirSync(b);
  writeFileSync(join(b, "transformer.onnx"), denoiser(form));
  writeFileSync(join(b, "vae_decoder.onnx"), rgbDecoder());
  const transformer = { inputs: { latent: "latent", time: "t", ...(form === "c" ? { condition: "cond" } : {}) }, output: "v", prediction: "flow_velocity", trainable: ["w_"] };
  const decoder = { input: "z", output: "rgb", output_range: [0, 1] };
  if (form === "c") {
    // the table: the empty prompt and "x", both c0 (C's guided velocity is then its unguided one)
    saveSafetensors(join(b, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [2, 6], data: Float32Array.from([...c0, ...c0]) }]]), { prompts: JSON.stringify(["", "x"]) });
    writeFileSync(join(b, "teacher.json"), JSON.stringify({ format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4], transformer, guidance_scales: [3], vae_decoder: decoder }));
  } else {
    // no table, no guidance scales
    writeFileSync(join(b, "teacher.json"), JSON.stringify({ format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4], transformer, vae_decoder: decoder }));
  }
  return b;
}
const U = bundle("u"), C = bundle("c");
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test("an unconditional teacher: the manifest takes no condition and no guidance scales, and refuses a guidance setting", () => {
  const base = { format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4], transformer: { inputs: { latent: "latent", time: "t" }, output: "v", prediction: "flow_velocity" } };
  const m = parseManifest(base);
  assert.deepEqual(m.transformer.inputs.condition, []);
  assert.deepEqual(m.guidanceScales, [1]);
  assert.equal(m.defaultGuidance, 1);
  assert.throws(() => parseManifest({ ...base, guidance_scales: [4, 5] }), (e: Error) => e instanceof ConfigError && /unconditional teacher .* is not guided; leave guidance_scales out/.test(e.message));
  assert.throws(() => parseManifest({ ...base, transformer: { ...base.transformer, inputs: { latent: "latent", time: "t", guidance: "g" } } }), /takes no guidance scale/);
  // a conditional teacher still needs its scales
  assert.throws(() => parseManifest({ ...base, transformer: { ...base.transformer, inputs: { latent: "latent", time: "t", condition: "c" } } }), /missing key "guidance_scales"/);
});

test("an unconditional teacher distils as its conditional twin does; its export (latent and time only) draws what tbcm sample draws", async () => {
  const runU = join(dir, "run-u"), runC = join(dir, "run-c");
  const ru = await distill(shortRunConfig(U), runU), rc = await distill(shortRunConfig(C), runC);
  assert.ok(ru.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${ru.metrics.teacher_import_rel_error}`);
  for (const k of ["consistency_rel_mse_1step", "consistency_rel_mse_2step", "consistency_rel_mse_4step", "fd_latent_1step_vs_teacher"]) {
    assert.ok(Math.abs(ru.metrics[k] - rc.metrics[k]) <= 1e-4 * Math.abs(rc.metrics[k]) + 1e-7, `${k}: ${ru.metrics[k]} against ${rc.metrics[k]}`);
  }
  assert.ok(ru.metrics.consistency_rel_mse_1step > 1e-4, "a student that is not trivially the teacher's endpoint");
  assert.ok(existsSync(join(runU, "grid-student-1step.png")), "sample grids from the bundle's decoder");
  for (const steps of [1, 2]) {
    const u = await sampleImages({ run: runU, prompts: ["", ""], steps, seed: 5 }), c = await sampleImages({ run: runC, prompts: ["x", "x"], steps, seed: 5 });
    assert.ok(maxAbs(u.pixels, c.pixels) < 1e-4, `images against the twin's at ${steps} steps: max |Δ| ${maxAbs(u.pixels, c.pixels).toExponential(2)}`);
  }
  await assert.rejects(sampleImages({ run: runU, prompts: ["a cat"], steps: 1 }), (e: Error) => e instanceof ConfigError && /is unconditional: it takes no prompt/.test(e.message));

  const out = join(dir, "export-u");
  const manifest = await exportStudent(runU, out) as { unconditional: boolean; prompt_embeddings: string | null; inputs: Record<string, unknown> };
  assert.equal(manifest.unconditional, true);
  assert.equal(manifest.prompt_embeddings, null);
  assert.deepEqual(Object.keys(manifest.inputs).sort(), ["latent", "t"]);
  const x = normal(key(8), 2 * 32), s = Float32Array.from([1, 0.3]);
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual([...session.inputNames].sort(), ["latent", "t"]);
  const got = (await session.run({ latent: new ort.Tensor("float32", x, [2, 2, 4, 4]), t: new ort.Tensor("float32", s, [2]) })).v.data as Float32Array;
  await session.release();
  const student = loadParamTree(join(runU, "student.safetensors")).params as never;
  const [v, lv] = bundleFlowStudent(loadBundle(U))(tree.ref(student), np.array(x).reshape([2, 32]), np.array(s).reshape([2, 1]), np.zeros([2, 1]), np.ones([2, 1]));
  lv.dispose();
  tree.dispose(student);
  const want = v.dataSync() as Float32Array;
  assert.ok(maxAbs(got, want) < 1e-5, `exported student: max |Δ| ${maxAbs(got, want).toExponential(2)}`);
  await assertWebGeneratorMatches(runU, out, ["", "", ""]);
});

test("an unconditional teacher takes no prompt file (one line, not a silent run over prompts it cannot read)", async () => {
  const cfg = shortRunConfig(U);
  await assert.rejects(distill({ ...cfg, promptsFile: "prompts/train.txt" } as typeof cfg, join(dir, "run-prompts")),
    (e: Error) => e instanceof ConfigError && /is unconditional .* takes no prompts; set prompts_file: ""/.test(e.message));
});
