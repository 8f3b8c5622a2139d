/**
 * The check a bundle run makes before it trains (src/bundle/parity.ts): onnxruntime on the
 * teacher's own file against tbcm's velocity, as a relative error. Measured here on a teacher in
 * the other conventions at once (noise at t = 0, a time scale, an x-prediction output, an int64
 * mask among its conditions), against tbcm's loaded flow: ~1e-7 as it is, and exactly the error
 * put in when tbcm's velocity is made 5 % too large. The conventions check: at pure noise a flow
 * velocity is the noise minus a constant; the shipped teacher's bundle is, and told a wrong
 * time_scale, prediction or noise_at it is not, and the run warns. The float16 round trip the file's
 * feeds use is exact for every half value and rounds halfway cases to even.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from "node:fs";
import { join, basename } from "node:path";
import "../../src/numerics/threads.ts";
import { numpy as np } from "@jax-js/jax";
import { loadBundle } from "../../src/bundle/load.ts";
import { teacherParity } from "../../src/bundle/parity.ts";
import { bundleDistillProblem } from "../../src/bundle/problem.ts";
import { exportTeacherBundle } from "../../src/bundle/exportTeacher.ts";
import { parseConfig, type BundleConfig } from "../../src/config/schema.ts";
import { evalKeys } from "../../src/train/distill.ts";
import { key } from "../../src/numerics/random.ts";
import { floatToHalf, halfToFloat } from "../../src/numerics/float16.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-parity-");
const PROMPTS = ["", "a", "b"];

// x0(latent [B, 2, 4, 4], t = 1 − s [B], cond [B, 6], mask int64 [B, 6]): the clean latent latent − s·v, the mask gating cond
const bundle = join(dir, "bundle");
mkdirSync(bundle);
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "x0_noise_at_0_masked",
    nodes: [
      node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
      node("MatMul", ["h", "w_in"], ["a"]),
      node("Cast", ["mask"], ["mf"], [attrInt("to", DataType.FLOAT)]),
      node("Mul", ["cond", "mf"], ["cm"]),
      node("MatMul", ["cm", "w_c"], ["b"]),
      node("Div", ["time", "hundred"], ["t01"]), node("Sub", ["one", "t01"], ["s"]),
      node("Unsqueeze", ["s", "axis1"], ["s1"]), node("Mul", ["s1", "w_time"], ["tt"]), node("Sin", ["tt"], ["temb"]),
      node("Sum", ["a", "b", "temb"], ["z"]), node("Tanh", ["z"], ["zz"]),
      node("MatMul", ["zz", "w_out"], ["o"]), node("Reshape", ["o", "shape"], ["v"]),
      node("Reshape", ["s", "col4"], ["s4"]), node("Mul", ["v", "s4"], ["sv"]), node("Sub", ["latent", "sv"], ["x0"]),
    ],
    initializers: [
      float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2)),
      float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
      float32Tensor("one", [], [1]), float32Tensor("hundred", [], [100]),
      int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]), int64Tensor("col4", [4], [-1, 1, 1, 1]),
    ],
    inputs: [
      { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
      { name: "time", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
      { name: "mask", elemType: DataType.INT64, shape: ["batch", 6] },
    ],
    outputs: [{ name: "x0", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
  },
}));
const mask = Float32Array.from({ length: 18 }, (_, i) => (i % 6 < 2 + (i >> 2) % 4 ? 1 : 0));
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([
  ["cond", { shape: [3, 6], data: values(18, 7, 1) }], ["mask", { shape: [3, 6], data: mask }],
]), { prompts: JSON.stringify(PROMPTS) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "latent", time: "time", condition: ["cond", "mask"] }, output: "x0", prediction: "x0", noise_at: 0, time_scale: 100 },
  guidance_scales: [3],
}));

test("parity: onnxruntime on the teacher's file against tbcm's velocity, in every convention the manifest names", async () => {
  const b = loadBundle(bundle);
  // prompts 0 and 2 (the empty one, "b"): a table row is the cond row, then the mask row
  const cond = values(18, 7, 1);
  const rows = { data: Float32Array.from([...cond.subarray(0, 6), ...mask.subarray(0, 6), ...cond.subarray(12), ...mask.subarray(12)]), shape: [2, 12] };
  const params = b.paramList();
  const flow = (scale: number) => async (x: { data: Float32Array; shape: readonly number[] }, s: { data: Float32Array }, c: { data: Float32Array; shape: readonly number[] }) => {
    const [v] = b.flow(params.map((p) => p.ref), np.array(x.data).reshape([2, 32]), np.array(s.data).reshape([2, 1]), np.array(c.data).reshape([2, 12]));
    return (v.dataSync() as Float32Array).map((e) => scale * e);
  };
  const exact = await teacherParity(b, rows, 1, "cpu", flow(1));
  assert.ok("relativeError" in exact && exact.relativeError < 1e-5, JSON.stringify(exact));
  const off = await teacherParity(b, rows, 1, "cpu", flow(1.05));
  assert.ok("relativeError" in off && Math.abs(off.relativeError - 0.05) < 1e-4, JSON.stringify(off));
  params.forEach((p) => p.dispose());
});

test("floatToHalf: every half value round-trips, and halfway cases round to even", () => {
  let bad = 0;
  for (let h = 0; h < 0x10000; h++) {
    const x = halfToFloat(h);
    if (!Number.isNaN(x) && floatToHalf(x) !== h) bad++;
  }
  for (let h = 0; h < 0x7bff; h++) {
    const a = halfToFloat(h), b = halfToFloat(h + 1);
    if (floatToHalf((a + b) / 2) !== (h & 1 ? h + 1 : h)) bad++;
  }
  assert.equal(bad, 0);
  assert.equal(floatToHalf(1e6), 0x7c00);
  assert.equal(floatToHalf(-1e-9), 0x8000);
});

test("conventions: the shipped teacher's bundle looks like a flow velocity at pure noise; told the wrong time_scale, prediction or noise_at, the run warns", async (t) => {
  const shipped = join(dir, "shipped");
  await exportTeacherBundle(shipped);
  const variant = (name: string, edit: (t: Record<string, unknown>) => void) => {
    const to = join(dir, name);
    mkdirSync(to);
    for (const f of ["transformer.onnx", "prompt_embeddings.safetensors"]) copyFileSync(join(shipped, f), join(to, f));
    const m = JSON.parse(readFileSync(join(shipped, "teacher.json"), "utf8"));
    edit(m.transformer);
    writeFileSync(join(to, "teacher.json"), JSON.stringify(m));
    return to;
  };
  const spreadOf = async (b: string, measure: boolean) => {
    const cfg = parseConfig({ method: "tbcm", executor: "onnx", prompts_file: "prompts/train.txt", teacher: { kind: "onnx", dir: b }, eval: { samples: 8 } }) as BundleConfig;
    const problem = await bundleDistillProblem(cfg, evalKeys(0));
    try {
      const warning = (problem.warnings ?? []).find((w) => /at pure noise the teacher's velocity is not the noise minus a constant/.test(w));
      // the number itself is in the evaluation's metrics
      const spread = measure ? (await problem.evaluate(problem.initialStudent(key(0)), join(dir, `eval-${basename(b)}`), key(0))).teacher_noise_spread : Number(/spread ([\d.]+)/.exec(warning ?? "")?.[1]);
      return { spread, warned: warning !== undefined };
    } finally {
      problem.dispose();
    }
  };
  const good = await spreadOf(shipped, true);
  assert.ok(good.spread < 0.4 && !good.warned, JSON.stringify(good));
  const seen = [`as it is ${good.spread.toFixed(3)}`];
  for (const [name, edit] of [["time-scale-1", (t: Record<string, unknown>) => (t.time_scale = 1)], ["x0", (t: Record<string, unknown>) => (t.prediction = "x0")], ["noise-at-0", (t: Record<string, unknown>) => (t.noise_at = 0)]] as const) {
    const bad = await spreadOf(variant(name, edit), false);
    assert.ok(bad.spread > 0.7 && bad.warned, `${name}: ${JSON.stringify(bad)}`);
    seen.push(`${name} ${bad.spread}`);
  }
  t.diagnostic(`noise spread: ${seen.join(", ")}`);
});
