/**
 * A guidance-distilled teacher (Flux-dev's kind): the guidance scale is an input of the network,
 * so there is no classifier-free guidance to do: one pass at scale w is the guided velocity.
 * `transformer.inputs.guidance` names the input; tbcm's teacher and evaluation run one pass with
 * w there (times guidance_input_scale), the student takes the scale where the teacher does, and
 * its export keeps the input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { distill } from "../../src/run/distill.ts";
import type { BundleConfig } from "../../src/config/schema.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleDistillProblem } from "../../src/bundle/problem.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { flowToTrigVelocity } from "../../src/method/flowToTrig.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { sampleImages } from "../../src/run/sample.ts";
import { loadBundleGenerator } from "../../web/tbcm-generator.js";
import { shortRunConfig, assertWebGeneratorMatches, rgbDecoder, values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-guidance-input-");
const PROMPTS = ["", "a red square", "a blue circle"];
const G = 10; // the network takes 10·w, as teacher.json says (guidance_input_scale)

const bundle = join(dir, "bundle");
mkdirSync(bundle);
// v(latent [B, 2, 4, 4], t [B], cond [B, 6], guidance [B]): the scale enters through its own embedding, added with the time's
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 17, irVersion: 8,
  graph: {
    name: "guidance_distilled",
    nodes: [
      node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
      node("MatMul", ["h", "w_in"], ["a"]),
      node("MatMul", ["cond", "w_c"], ["b"]),
      node("Unsqueeze", ["t", "axis1"], ["t1"]),
      node("Mul", ["t1", "w_time"], ["tt"]),
      node("Sin", ["tt"], ["temb"]),
      node("Unsqueeze", ["guidance", "axis1"], ["g1"]),
      node("Mul", ["g1", "w_g"], ["gg"]),
      node("Tanh", ["gg"], ["gemb"]),
      node("Mul", ["b", "gemb"], ["bg"]), // the prompt's pull grows with the scale
      node("Sum", ["a", "bg", "temb"], ["z"]),
      node("Tanh", ["z"], ["zz"]),
      node("MatMul", ["zz", "w_out"], ["o"]),
      node("Reshape", ["o", "shape"], ["v"]),
    ],
    initializers: [
      float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_c", [6, 16], values(96, 2, 1)),
      float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_g", [1, 16], values(16, 6, 0.02)),
      float32Tensor("w_out", [16, 32], values(512, 5)), int64Tensor("axis1", [1], [1]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
    ],
    inputs: [
      { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
      { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 6] },
      { name: "guidance", elemType: DataType.FLOAT, shape: ["batch"] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
  },
}));
const cond = values(PROMPTS.length * 6, 7, 1);
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 6], data: cond }]]), { prompts: JSON.stringify(PROMPTS) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
  format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
  transformer: { inputs: { latent: "latent", time: "t", condition: "cond", guidance: "guidance" }, guidance_input_scale: G, output: "v", prediction: "flow_velocity" },
  guidance_scales: [2, 3.5, 5],
  vae_decoder: { input: "z", output: "rgb", output_range: [0, 1] },
}));
writeFileSync(join(bundle, "vae_decoder.onnx"), rgbDecoder());

const rowsOf = (idx: number[]) => Float32Array.from(idx.flatMap((p) => [...cond.subarray(6 * p, 6 * p + 6)]));
const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);
const run = (session: ort.InferenceSession, x: Float32Array, s: number[], idx: number[], w: number[]) => session.run({
  latent: new ort.Tensor("float32", x, [idx.length, 2, 4, 4]), t: new ort.Tensor("float32", Float32Array.from(s), [idx.length]),
  cond: new ort.Tensor("float32", rowsOf(idx), [idx.length, 6]), guidance: new ort.Tensor("float32", Float32Array.from(w, (v) => G * v), [idx.length]),
}).then((o) => o.v.data as Float32Array);

test("a guidance-distilled teacher: the loaded flow feeds G·w to its guidance input, and the method's teacher is one pass of it (no CFG)", async () => {
  const problem = await bundleDistillProblem(shortRunConfig(bundle) as BundleConfig, { curve: key(1), eval: key(2), sampling: key(3) });
  try {
    const teacher = problem.teacher;
    if (typeof teacher === "function") throw new Error("expected a teacher that guides itself");
    const idx = [1, 2], s = [0.8, 0.3], w = [2, 5];
    const x = normal(key(4), 2 * 32);
    const session = await ort.InferenceSession.create(join(bundle, "transformer.onnx"));
    const want = await run(session, x, s, idx, w);
    assert.ok(maxRel(await run(session, x, s, idx, [1, 1]), want) > 1e-2, "the fixture's guidance input changes its output");
    await session.release();
    const b = loadBundle(bundle);
    const c = () => np.array(rowsOf(idx)).reshape([2, 6]), ws = () => np.array(Float32Array.from(w)).reshape([2, 1]);
    const [v] = b.flow(b.paramList(), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), c(), { guidance: ws() });
    const e = maxRel(v.dataSync() as Float32Array, want);
    assert.ok(e < 1e-4, `the loaded flow with the scale: relative error ${e.toExponential(2)}`);
    // the method's teacher: that flow in TrigFlow form, one pass at the scale
    const u = np.array(x).reshape([2, 32]), t = np.array(Float32Array.of(0.4, 1.2)).reshape([2, 1]);
    const F = teacher.guided(u.ref, t.ref, c(), ws());
    const Fwant = flowToTrigVelocity((xf, sf) => b.flow(b.paramList(), xf, sf, c(), { guidance: ws() })[0], u, t);
    const e2 = maxRel(F.dataSync() as Float32Array, Fwant.dataSync() as Float32Array);
    assert.ok(e2 < 1e-6, `the method's guided teacher: relative error ${e2.toExponential(2)}`);
  } finally {
    problem.dispose();
  }
});

test("a guidance-distilled teacher: a short run, and the exported student takes the scale at the teacher's input (onnxruntime and plain JavaScript)", async () => {
  const runDir = join(dir, "run");
  const r = await distill(shortRunConfig(bundle), runDir);
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  const out = join(dir, "export");
  const manifest = await exportStudent(runDir, out) as { roles: { guidance?: string }; guidance_input_scale: number; guidance_scale: number };
  assert.equal(manifest.roles.guidance, "guidance");
  assert.equal(manifest.guidance_input_scale, G);
  assert.equal(manifest.guidance_scale, 3.5); // default_guidance: the middle scale
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "t", "cond", "guidance"]);
  const idx = [2, 1], s = [1, 0.4];
  const x = normal(key(8), 2 * 32);
  const student = loadParamTree(join(runDir, "student.safetensors")).params as never;
  const flow = bundleFlowStudent(loadBundle(bundle));
  for (const w of [[2, 5], [3.5, 3.5]]) {
    const got = await run(session, x, s, idx, w);
    const [v, lv] = flow(tree.ref(student), np.array(x).reshape([2, 32]), np.array(Float32Array.from(s)).reshape([2, 1]), np.array(rowsOf(idx)).reshape([2, 6]), np.array(Float32Array.from(w)).reshape([2, 1]));
    lv.dispose();
    const e = maxRel(got, v.dataSync() as Float32Array);
    assert.ok(e < 1e-4, `exported student at w = [${w}]: relative error ${e.toExponential(2)}`);
  }
  await session.release();
  tree.dispose(student);
  await assertWebGeneratorMatches(runDir, out, ["a blue circle", "a red square"]);
  // the web generator takes the scale too, as sampleImages does
  const g = await loadBundleGenerator(ort, async (name: string) => readFileSync(join(out, name)));
  const want = await sampleImages({ run: runDir, prompts: ["a red square"], steps: 1, seed: 2, guidance: 5 });
  const at5 = (await g.generate(["a red square"], { seed: 2, steps: 1, guidance: 5 })).images;
  const at2 = (await g.generate(["a red square"], { seed: 2, steps: 1, guidance: 2 })).images;
  await g.release();
  const d = at5.reduce((m, x, i) => Math.max(m, Math.abs(x - want.pixels[i])), 0);
  assert.ok(d < 1e-4, `web generator at guidance 5: max |Δ| ${d.toExponential(2)}`);
  assert.ok(at2.some((x, i) => Math.abs(x - at5[i]) > 1e-3), "the scale changes the images");
});

test("an export whose guidance is baked in refuses another scale in plain JavaScript (one line), rather than ignoring it", async () => {
  const conds = join(dir, "baked");
  mkdirSync(conds);
  for (const f of ["transformer.onnx", "prompt_embeddings.safetensors", "vae_decoder.onnx"]) writeFileSync(join(conds, f), readFileSync(join(bundle, f)));
  // the same network, its guidance input fed a constant: a teacher without a guidance input is guided by CFG, its scale baked into the export
  const m = JSON.parse(readFileSync(join(bundle, "teacher.json"), "utf8"));
  delete m.transformer.inputs.guidance;
  m.transformer.inputs.constant = ["guidance"];
  writeFileSync(join(conds, "teacher.json"), JSON.stringify(m));
  saveSafetensors(join(conds, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 6], data: cond }], ["guidance", { shape: [], data: Float32Array.of(30) }]]), { prompts: JSON.stringify(PROMPTS) });
  const run2 = join(dir, "run-baked"), out2 = join(dir, "export-baked");
  await distill(shortRunConfig(conds), run2);
  await exportStudent(run2, out2);
  const g = await loadBundleGenerator(ort, async (name: string) => readFileSync(join(out2, name)));
  await assert.rejects(g.generate(["a red square"], { guidance: 7 }), (e: Error) => /guidance is baked in at 3\.5/.test(e.message) && !e.message.includes("\n"));
  assert.equal((await g.generate(["a red square"], { guidance: 3.5 })).images.length, 48);
  await g.release();
});
