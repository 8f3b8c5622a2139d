/**
 * A foreign architecture as a teacher bundle: the Sana-style block of test/fixtures/onnx/
 * (scripts/make-onnx-fixture.py: NCHW latents, t ∈ [0, 1] scaled inside, ReLU linear attention,
 * depthwise Conv, float16 initializer) with a written teacher.json and a tiny embeddings table.
 * It distils a few steps with a guidance embedding hooked into its time embedding, the student's
 * exact JVP matches central differences, and its exported student runs in onnxruntime-node.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, copyFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, jvp, tree, type Array } from "@jax-js/jax";
import { parseConfig, type TbcmConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { readOnnxFile } from "../../src/onnx/reader.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleStudent, bundleFlowStudent, initialBundleStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { tempDir } from "../tempDir.ts";
import { encodeModel, float32Tensor, attrInts, attrString, DataType } from "../../src/executor/onnxProto.ts";
import { importOnnx } from "../../src/onnx/graph.ts";
import { decodeOnnx } from "../../src/onnx/reader.ts";
import { PNG } from "pngjs";
import { spawnSync } from "node:child_process";
import { sampleImages } from "../../src/run/sample.ts";
import { loadBundleGenerator, fromUrl } from "../../web/tbcm-generator.js";
import { serveExport } from "../../src/cli/serve.ts";

const FIXTURE = "test/fixtures/onnx/denoiser.onnx";
const dir = tempDir("tbcm-fixture-bundle-");
const bundle = join(dir, "bundle");
const PROMPTS = ["", "a red square", "a blue circle", "two green lines"];

// the tensor where the fixture forms its time embedding: the output of the Gemm reading t_embed.2.weight
const temb = readOnnxFile(FIXTURE).graph.nodes.find((n) => n.inputs.includes("t_embed.2.weight"))!.outputs[0];

function writeBundle(): void {
  mkdirSync(bundle, { recursive: true });
  copyFileSync(FIXTURE, join(bundle, "transformer.onnx"));
  const rows = normal(key(42), PROMPTS.length * 8 * 16);
  rows.fill(0, 0, 8 * 16); // the empty prompt: all padding tokens
  saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [PROMPTS.length, 8, 16], data: rows }]]), { prompts: JSON.stringify(PROMPTS) });
  writeFileSync(join(bundle, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1",
    latent_shape: [4, 8, 8],
    transformer: { inputs: { latent: "x", time: "t", condition: "cond" }, output: "v", time_scale: 1, prediction: "flow_velocity", time_embedding: temb },
    guidance_scales: [2, 3],
    default_guidance: 2.5,
  }, null, 2));
}
writeBundle();

const config = (extra: Record<string, unknown> = {}): TbcmConfig => parseConfig({
  method: "tbcm", seed: 1, executor: "onnx", teacher: { kind: "onnx", dir: bundle },
  route: { shift: 2.5, steps: 4 }, loss: { warmup: 2 }, optim: { kind: "adamw", lr: 1e-3 },
  train: { steps: 3, prompts_per_step: 2, log_every: 1, eval_every: 3, checkpoint_every: 3 },
  eval: { samples: 3, curve_noises: 2 },
  ...extra,
});

const rel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
};

test("the fixture distils a few steps through the bundle (guidance embedding hooked at its time embedding)", async () => {
  const run = join(dir, "run");
  const lines: string[] = [];
  const r = await distill(config(), run, { progress: (l) => lines.push(l) });
  assert.equal(r.steps, 3);
  const log = readFileSync(join(run, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const losses = log.filter((l) => "loss" in l).map((l) => l.loss);
  assert.equal(losses.length, 3);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  assert.ok(!existsSync(join(run, "grid-student-1step.png")), "no decoder: no grids");
  const { params, metadata } = loadParamTree(join(run, "student.safetensors"));
  assert.equal(metadata.kind, "tbcm-student-onnx");
  assert.ok((params as { guidance?: unknown }).guidance, "a guidance embedder");
  tree.dispose(params);
  console.log(`# fixture bundle: losses ${losses.map((l: number) => l.toFixed(4)).join(", ")}; 1-step consistency ${r.metrics.consistency_rel_mse_1step.toFixed(3)}`);

  // the student exported in the fixture's own contract runs in onnxruntime-node at batch 1 and 3
  const out = join(dir, "export");
  await exportStudent(run, out);
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["x", "t", "cond"]);
  assert.deepEqual(session.outputNames, ["v"]);
  const b = loadBundle(bundle);
  const flow = bundleFlowStudent(b);
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  for (const B of [1, 3]) {
    const x = normal(key(B), B * 256), t = Float32Array.from({ length: B }, (_, i) => 0.3 + 0.2 * i), c = normal(key(9 + B), B * 128);
    const got = (await session.run({ x: new ort.Tensor("float32", x, [B, 4, 8, 8]), t: new ort.Tensor("float32", t, [B]), cond: new ort.Tensor("float32", c, [B, 8, 16]) })).v;
    assert.deepEqual(got.dims, [B, 4, 8, 8]);
    const [v, lv] = flow(tree.ref(student), np.array(x).reshape([B, 256]), np.array(t).reshape([B, 1]), np.array(c).reshape([B, 8, 16]), np.full([B, 1], 2.5));
    lv.dispose();
    const e = rel(got.data as Float32Array, v.dataSync() as Float32Array);
    assert.ok(e < 1e-5, `exported student at batch ${B}: relative error ${e.toExponential(2)}`);
  }
  tree.dispose(student);
  await session.release();
});

test("the bundle student's exact JVP (along u and t, with the guidance hook) matches central differences", () => {
  const b = loadBundle(bundle);
  const p = initialBundleStudent(key(3), b, 32);
  // a non-zero guidance embedding, so that the hook is on the path
  p.guidance!.fc2.w = np.array(normal(key(4), 32 * 32).map((v) => 0.05 * v)).reshape([32, 32]);
  const student = bundleStudent(b);
  const B = 2, d = 256;
  const u0 = normal(key(5), B * d), du = normal(key(6), B * d);
  const t0 = Float32Array.of(0.6, 1.1), dt = Float32Array.of(0.3, -0.2);
  const cond = normal(key(7), B * 128);
  const F = (u: Array, t: Array) => {
    const [f, lv] = student(tree.ref(p), u, t, np.array(cond).reshape([B, 8, 16]), np.array(Float32Array.of(2, 3)).reshape([B, 1]));
    lv.dispose();
    return f;
  };
  const arr = (x: Float32Array, shape: number[]) => np.array(x).reshape(shape);
  const [out, tan] = jvp(F, [arr(u0, [B, d]), arr(t0, [B, 1])], [arr(du, [B, d]), arr(dt, [B, 1])]);
  out.dispose();
  // ε = 3e-4: few ReLU (linear attention) inputs change sign between the two points (at 1e-3: 3.6e-3)
  const eps = 3e-4;
  const at = (sign: number) => F(arr(u0.map((v, i) => v + sign * eps * du[i]), [B, d]), arr(t0.map((v, i) => v + sign * eps * dt[i]), [B, 1])).dataSync() as Float32Array;
  const [plus, minus] = [at(1), at(-1)];
  const e = rel(tan.dataSync() as Float32Array, plus.map((v, i) => (v - minus[i]) / (2 * eps)));
  assert.ok(e < 2e-3, `JVP vs central difference: relative error ${e.toExponential(2)}`);
  console.log(`# fixture student JVP vs central differences (ε = ${eps}): relative ${e.toExponential(2)}`);
  tree.dispose(p as never);
});

test("a decoder that upsamples (Resize, Conv) to RGB: the run's grids are in colour at the decoded size; the decoder agrees with onnxruntime; the student draws images (library, tbcm sample, and the export in plain JavaScript)", async () => {
  // latent [B, 4, 8, 8] → nearest ×2 (half_pixel) → 3×3 Conv to 3 channels → Tanh: images [B, 3, 16, 16] in [−1, 1]
  const wv = Float32Array.from({ length: 3 * 4 * 9 }, (_, i) => 0.4 * Math.sin(1.7 * i + 0.3));
  const decoder = encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "upsampling_decoder",
      nodes: [
        { opType: "Resize", inputs: ["latent", "", "scales"], outputs: ["up"], name: "up", attributes: [attrString("mode", "nearest")] },
        { opType: "Conv", inputs: ["up", "w"], outputs: ["conv"], name: "conv", attributes: [attrInts("pads", [1, 1, 1, 1])] },
        { opType: "Tanh", inputs: ["conv"], outputs: ["image"], name: "tanh", attributes: [] },
      ],
      initializers: [float32Tensor("scales", [4], Float32Array.of(1, 1, 2, 2)), float32Tensor("w", [3, 4, 3, 3], wv)],
      inputs: [{ name: "latent", elemType: DataType.FLOAT, shape: ["batch", 4, 8, 8] }],
      outputs: [{ name: "image", elemType: DataType.FLOAT, shape: ["batch", 3, 16, 16] }],
    },
  });
  const colour = join(dir, "bundle-rgb");
  mkdirSync(colour, { recursive: true });
  for (const f of ["transformer.onnx", "prompt_embeddings.safetensors"]) copyFileSync(join(bundle, f), join(colour, f));
  writeFileSync(join(colour, "vae_decoder.onnx"), decoder);
  const manifest = JSON.parse(readFileSync(join(bundle, "teacher.json"), "utf8"));
  writeFileSync(join(colour, "teacher.json"), JSON.stringify({ ...manifest, vae_decoder: { input: "latent", output: "image" } }));
  const run = join(dir, "run-rgb");
  // η 0.9: later steps re-noise with part of the sample's own noise, which the web generator must repeat
  await distill(config({ teacher: { kind: "onnx", dir: colour }, train: { steps: 1, prompts_per_step: 2, log_every: 1, eval_every: 1, checkpoint_every: 1 }, eval: { samples: 3, curve_noises: 2, eta: 0.9 } }), run);
  const png = PNG.sync.read(readFileSync(join(run, "grid-teacher-16step.png")));
  // 3 prompts (the empty one is not drawn) × 8 columns of 16 × 16 images, zoom 2, pad 2
  assert.deepEqual([png.width, png.height], [8 * 34 + 2, 3 * 34 + 2]);
  let coloured = 0;
  for (let i = 0; i < png.width * png.height; i++) if (png.data[4 * i] !== png.data[4 * i + 1]) coloured++;
  assert.ok(coloured > 1000, `${coloured} pixels whose red and green differ`);
  // the decoder as the bundle path imports it, against onnxruntime, on one latent
  const session = await ort.InferenceSession.create(decoder);
  const z = normal(key(77), 256);
  const want = (await session.run({ latent: new ort.Tensor("float32", z, [1, 4, 8, 8]) })).image.data as Float32Array;
  await session.release();
  const imported = importOnnx(decodeOnnx(decoder, { file: "vae_decoder.onnx" }));
  const [got] = imported.apply(imported.paramArrays(), [np.array(z).reshape([1, 4, 8, 8])]);
  assert.ok(rel(got.dataSync() as Float32Array, want) < 1e-6);

  // the run's student draws images through the library and the CLI: RGB 16 × 16, deterministic by seed, table prompts only
  const prompts = ["a red square", "two green lines"];
  const a = await sampleImages({ run, prompts, steps: 2, seed: 3 }), again = await sampleImages({ run, prompts, steps: 2, seed: 3 });
  assert.deepEqual([a.channels, a.height, a.width, a.pixels.length], [3, 16, 16, 2 * 3 * 256]);
  assert.deepEqual(a.pixels, again.pixels);
  assert.notDeepEqual((await sampleImages({ run, prompts, steps: 2, seed: 4 })).pixels, a.pixels);
  await assert.rejects(sampleImages({ run, prompts: ["a purple cat"] }), /prompt "a purple cat" is not in the bundle's embeddings table/);
  await assert.rejects(sampleImages({ run: join(dir, "run"), prompts }), /has no VAE decoder \(teacher\.json: vae_decoder\), so its student draws latents, not images/);
  // the export folder in plain JavaScript (web/tbcm-generator.js on onnxruntime-node): the images of sampleImages
  const exported = join(dir, "export-rgb");
  await exportStudent(run, exported);
  const g = await loadBundleGenerator(ort, async (name: string) => readFileSync(join(exported, name))); // a Node Buffer, as the README's example
  for (const steps of [1, 2]) {
    const want = await sampleImages({ run, prompts, steps, seed: 3 });
    const got = await g.generate(prompts, { seed: 3, steps });
    assert.deepEqual([got.channels, got.height, got.width], [3, 16, 16]);
    const e = got.images.reduce((m, v, i) => Math.max(m, Math.abs(v - want.pixels[i])), 0);
    assert.ok(e < 1e-3, `web generator at ${steps} steps: max |Δ| ${e.toExponential(2)}`);
  }
  await assert.rejects(g.generate(["a purple cat"]), /prompt "a purple cat" is not in the export's embeddings table/);
  await g.release();
  // tbcm serve: the demo page knows bundle exports, and the module draws the same images over HTTP
  const server = await serveExport(exported, 0);
  try {
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    assert.match(await (await fetch(base)).text(), /loadBundleGenerator/);
    const overHttp = await loadBundleGenerator(ort, fromUrl(`${base}model/`));
    const want = await sampleImages({ run, prompts, steps: 2, seed: 3 });
    const got = (await overHttp.generate(prompts, { seed: 3, steps: 2 })).images;
    assert.ok(got.every((v, i) => Math.abs(v - want.pixels[i]) < 1e-3));
    await overHttp.release();
  } finally {
    server.close();
  }
  const out = join(dir, "rgb-sample.png");
  const cli = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "sample", "--run", run, "--prompt", prompts[0], "--n", "3", "--steps", "1", "--out", out], { encoding: "utf8" });
  assert.equal(cli.status, 0, cli.stderr);
  const grid = PNG.sync.read(readFileSync(out));
  assert.deepEqual([grid.width, grid.height], [3 * 34 + 2, 34 + 2]);
});
