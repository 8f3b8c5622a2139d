import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { jit } from "@jax-js/jax";
import { parseConfig, type TbcmConfig } from "../../src/config/schema.ts";
import { evalKeys, pairPass, drawPairs } from "../../src/train/distill.ts";
import { teacherKind } from "../../src/run/kinds.ts";
import { routeAngles } from "../../src/method/route.ts";
import { distill, sampleImages, loadStudent, exportStudent } from "../../src/index.ts";
import { encode } from "../../src/data/tokenizer.ts";
import { loadTeacher } from "../../src/stack/load.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";
import { tempDir } from "../tempDir.ts";

const fixture = new URL("../fixtures/fashion-mnist/", import.meta.url).pathname;
const dir = tempDir("tbcm-stack-");
const promptsFile = join(dir, "prompts.txt");
writeFileSync(promptsFile, "a photo of a sneaker\na bag\nan ankle boot on a wooden floor\n");

/** A smoke distillation of the shipped teacher: a few steps, 2 prompts per step, a 4-angle route. */
function smokeConfig(extra: Record<string, unknown> = {}): TbcmConfig {
  return parseConfig({
    method: "tbcm", seed: 3, prompts_file: promptsFile,
    teacher: { kind: "stack", data_dir: fixture },
    route: { shift: 2.5, steps: 4 }, guidance: [4, 4.5, 5], guidance_interval: [0, 0.5], guidance_ramp: 0.1, loss: { warmup: 2 },
    optim: { kind: "adamw", lr: 3e-4 },
    train: { steps: 8, prompts_per_step: 2, log_every: 1, eval_every: 4, checkpoint_every: 4 },
    eval: { samples: 30, curve_noises: 8 },
    ...extra,
  });
}

const run = join(dir, "run");
let progress: string[] = [];
before(async () => {
  progress = [];
  await distill(smokeConfig(), run, { progress: (l) => progress.push(l) });
});

test("stack TBCM pairs: (N−1)·B rows of 196-d latents at angles inside the jittered route, without the VAE", async () => {
  const cfg = smokeConfig();
  const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
  const loadsBefore = problem.decoderLoads();
  const pass = jit(pairPass(cfg, problem).f);
  const route = routeAngles(2.5, 4);
  const batch = await drawPairs(cfg, problem, key(1), route, async (xs) => pass(...xs));
  assert.deepEqual(batch.xt.shape, [3 * 2, 196]);
  assert.deepEqual(batch.dxdt.shape, [3 * 2, 196]);
  assert.deepEqual(batch.cond.shape, [6, 9, 65]);
  const t = Array.from(batch.t.dataSync() as Float32Array);
  t.forEach((a, r) => {
    const i = 1 + Math.floor(r / 2);
    assert.ok(a <= route[i - 1] + 1e-6 && a >= route[i] - 1e-6, `row ${r}: angle ${a} outside [${route[i]}, ${route[i - 1]}]`);
  });
  for (const a of [batch.xt, batch.dxdt, batch.cond, batch.w, batch.keep]) a.dispose();
  pass.dispose();
  assert.equal(problem.decoderLoads(), loadsBefore, "TBCM's pairs never load the VAE");
  problem.dispose();
  // the unknown words of the prompt file were reported, not fatal
  assert.ok(progress.some((l) => /unknown to the text encoder .*wooden/.test(l)), progress.join("\n"));
});

test("smoke distillation on the shipped teacher: loss and 1-step consistency error fall; report and grids written", async () => {
  const log = readFileSync(join(run, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const curve = log.filter((r) => "consistency_rel_mse_1step" in r).map((r) => r.consistency_rel_mse_1step);
  assert.ok(curve.at(-1) < curve[0], `consistency ${curve}`);
  // the black filter's keep rate (the VAE's black latent) is logged with every step line
  const keep = log.filter((r) => "loss" in r).map((r) => r.black_filter_keep);
  assert.equal(keep.length, 8);
  assert.ok(keep.every((k) => k >= 0 && k <= 1 && k * 2 === Math.round(k * 2)), `keep ${keep}`);
  // a black latent of the wrong size for the teacher's latents is refused before the run starts
  await assert.rejects(distill(smokeConfig({ black_latent: [0, 0, 0] }), join(dir, "bad-black")), /"black_latent": expected 196 numbers \(the teacher's latent size\), got 3/);
  assert.equal(existsSync(join(dir, "bad-black")), false);
  const metrics = JSON.parse(readFileSync(join(run, "metrics.json"), "utf8"));
  for (const k of ["fd_teacher_16step", "fd_student_1step", "accuracy_student_1step", "consistency_rel_mse_1step", "fd_floor"]) {
    assert.ok(Number.isFinite(metrics[k]), k);
  }
  for (const f of ["report.md", "grid-student-1step.png", "grid-teacher-16step.png", "grid-compare.png", "curve-loss.svg"]) assert.ok(existsSync(join(run, f)), f);
  // the report leads with one row per sampler, its ratios to the teacher from metrics.json
  const report = readFileSync(join(run, "report.md"), "utf8");
  const ratio = (metrics.fd_student_1step / metrics.fd_teacher_16step).toFixed(2);
  assert.match(report, new RegExp(`\\| student, 1 step \\| ${metrics.fd_student_1step.toFixed(2)} \\([0-9.]+× floor\\) \\| ${metrics.accuracy_student_1step.toFixed(3)} \\| ${ratio}× \\|`));
  assert.match(report, /\| teacher, 16 steps \|/);
  // paired differences are differences of the metrics on the same images, each with a finite error
  for (const [name, a, b] of [["1step_minus_teacher", "student_1step", "teacher_16step"], ["2step_minus_1step", "student_2step", "student_1step"], ["4step_minus_2step", "student_4step", "student_2step"]]) {
    assert.ok(Math.abs(metrics[`fd_${name}`] - (metrics[`fd_${a}`] - metrics[`fd_${b}`])) < 1e-9, name);
    assert.ok(Math.abs(metrics[`accuracy_${name}`] - (metrics[`accuracy_${a}`] - metrics[`accuracy_${b}`])) < 1e-9, name);
    assert.ok(metrics[`fd_${name}_se`] >= 0 && metrics[`accuracy_${name}_se`] >= 0, name);
  }
  assert.match(report, /\| 4 steps − 2 steps \| [+−][0-9.]+ ± [0-9.]+ \| [+−][0-9.]+ ± [0-9.]+ \|/);
});

test("sampling: deterministic by seed, different for another seed; the exported ONNX files reproduce it (onnxruntime-node and -web)", async () => {
  const prompts = ["a photo of a sneaker", "a bag"];
  const a = await sampleImages({ run, prompts, steps: 1, seed: 5 });
  const b = await sampleImages({ run, prompts, steps: 1, seed: 5 });
  const c = await sampleImages({ run, prompts, steps: 1, seed: 6 });
  assert.deepEqual(Array.from(a.pixels), Array.from(b.pixels));
  assert.ok(a.pixels.some((v, i) => Math.abs(v - c.pixels[i]) > 1e-3));
  const two = await sampleImages({ run, prompts, steps: 2, seed: 5 });
  assert.equal(two.pixels.length, 2 * 784);
  assert.throws(() => loadStudent(run), /student of the text-to-image stack: draw images with sampleImages/);

  const out = join(dir, "export");
  await exportStudent(run, out, 2);
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  const tok = loadTeacher(JSON.parse(readFileSync(join(run, "config.json"), "utf8")).teacher.model).tokenizer;
  const ids = Float32Array.from(prompts.flatMap((p) => Array.from(encode(tok, p, manifest.tokenizer.max_words))));
  const noise = normal(foldIn(key(5), 0), 2 * 196); // the noise sampleImages draws for seed 5
  for (const runtime of [ort, await import("onnxruntime-web")]) {
    const T = runtime.Tensor;
    const session = (f: string) => runtime.InferenceSession.create(join(out, f));
    const { cond } = await (await session("text_encoder.onnx")).run({ token_ids: new T("float32", ids, [2, 8]) });
    const { latent } = await (await session("generator.onnx")).run({
      noise: new T("float32", noise, [2, 196]), cond, guidance: new T("float32", Float32Array.of(4.5, 4.5), [2, 1]),
    });
    const { image } = await (await session("vae_decoder.onnx")).run({ latent });
    const got = image.data as Float32Array;
    a.pixels.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 2e-3, `pixel ${i}: ${got[i]} vs ${v}`));
    // the int8 generator (standard ops too) gives nearly the same images
    await exportStudent(run, join(dir, "export-int8"), 2, { int8: true });
    const int8 = await runtime.InferenceSession.create(join(dir, "export-int8", "generator.onnx"));
    const q = await int8.run({ noise: new T("float32", noise, [2, 196]), cond, guidance: new T("float32", Float32Array.of(4.5, 4.5), [2, 1]) });
    const qImage = (await (await session("vae_decoder.onnx")).run({ latent: q.latent })).image.data as Float32Array;
    const meanAbs = a.pixels.reduce((s, v, i) => s + Math.abs(qImage[i] - v), 0) / a.pixels.length;
    assert.ok(meanAbs < 0.02 && meanAbs > 0, `int8 pixels differ by ${meanAbs} on average`);
  }
});

test("a 2-step export with re-noising share η reproduces sampleImages with the same steps, η and noises", async () => {
  const prompts = ["a photo of a sneaker", "a bag"];
  const eta = 0.9;
  const expected = await sampleImages({ run, prompts, steps: 2, seed: 5, eta });
  const other = await sampleImages({ run, prompts, steps: 2, seed: 5, eta: 1 });
  assert.ok(expected.pixels.some((v, i) => Math.abs(v - other.pixels[i]) > 1e-3), "η changes the 2-step samples");
  const out = join(dir, "export-2step");
  await exportStudent(run, out, 2, { steps: 2, eta });
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  assert.equal(manifest.steps, 2);
  assert.equal(manifest.renoise_eta, eta);
  assert.deepEqual(Object.keys(manifest.inputs), ["token_ids", "noise", "guidance", "noise_step2"]);
  const tok = loadTeacher(JSON.parse(readFileSync(join(run, "config.json"), "utf8")).teacher.model).tokenizer;
  const ids = Float32Array.from(prompts.flatMap((p) => Array.from(encode(tok, p, manifest.tokenizer.max_words))));
  const session = (f: string) => ort.InferenceSession.create(join(out, f));
  const { cond } = await (await session("text_encoder.onnx")).run({ token_ids: new ort.Tensor("float32", ids, [2, 8]) });
  const { latent } = await (await session("generator.onnx")).run({
    noise: new ort.Tensor("float32", normal(foldIn(key(5), 0), 2 * 196), [2, 196]), cond,
    guidance: new ort.Tensor("float32", Float32Array.of(4.5, 4.5), [2, 1]),
    noise_step2: new ort.Tensor("float32", normal(foldIn(foldIn(key(5), 1), 1), 2 * 196), [2, 196]), // sampleImages' second noise
  });
  const { image } = await (await session("vae_decoder.onnx")).run({ latent });
  const got = image.data as Float32Array;
  expected.pixels.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 2e-3, `pixel ${i}: ${got[i]} vs ${v}`));
});

test("web/tbcm-generator.js: over 2-row files it reproduces sampleImages for 5 prompts at 1 and 2 steps (onnxruntime-node and -web)", async () => {
  const web = await import("../../web/tbcm-generator.js");
  const prompts = ["a photo of a sneaker", "a bag", "a coat", "a wooden sneaker", "an ankle boot"];
  for (const steps of [1, 2]) {
    const expected = await sampleImages({ run, prompts, steps, seed: 7 });
    const out = join(dir, `export-web-${steps}`);
    await exportStudent(run, out, 2, { steps });
    for (const runtime of [ort, await import("onnxruntime-web")]) {
      const g = await web.loadGenerator(runtime, (name: string) => readFile(join(out, name)));
      const { images, unknownWords } = await g.generate(prompts, { seed: 7 });
      await g.release();
      assert.deepEqual(unknownWords, ["wooden"]);
      assert.equal(images.length, expected.pixels.length);
      expected.pixels.forEach((v, i) => assert.ok(Math.abs(images[i] - v) < 2e-3, `${steps} steps, pixel ${i}: ${images[i]} vs ${v}`));
    }
  }
  const g = await web.loadGenerator(ort, (name: string) => readFile(join(dir, "export-web-1", name)));
  await assert.rejects(g.generate(["a photo of a bag in a box on a shelf at home"]), /has 13 words; the text encoder takes at most 8/);
  await g.release();
});

test("tbcm serve: the demo page, onnxruntime-web and the export over HTTP with isolation headers; the web module generates from the URL; nothing outside is served", async () => {
  const { serveExport } = await import("../../src/cli/serve.ts");
  const web = await import("../../web/tbcm-generator.js");
  const out = join(dir, "export-web-1");
  const server = await serveExport(out, 0);
  try {
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /text\/html/);
    assert.equal(page.headers.get("cross-origin-embedder-policy"), "require-corp");
    assert.match(await page.text(), /tbcm-generator\.js/);
    const ortFile = await fetch(`${base}/ort/ort.webgpu.min.mjs`);
    assert.equal(ortFile.status, 200);
    assert.equal(ortFile.headers.get("content-type"), "text/javascript");
    await ortFile.arrayBuffer();
    for (const path of ["/model/../../package.json", "/model/%2e%2e%2f%2e%2e%2fpackage.json", "/model/", "/nothing.js", "/model/%E0%A4%A"]) {
      const r = await fetch(base + path);
      assert.equal(r.status, 404, path);
      await r.text();
    }
    // the demo page's own script, with its imports pointed at files and a stub DOM, draws 8 images
    const html = await (await fetch(`${base}/`)).text();
    const script = html.match(/<script type="module">([\s\S]*?)<\/script>/)![1]
      .replace('"./ort/ort.webgpu.min.mjs"', JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve("onnxruntime-web")).href))
      .replace('"./tbcm-generator.js"', JSON.stringify(new URL("../../web/tbcm-generator.js", import.meta.url).href));
    const drawn: { data: Uint8ClampedArray; x: number }[] = [];
    let submit: ((e: { preventDefault(): void }) => Promise<void>) | undefined;
    const elements: Record<string, Record<string, unknown>> = {
      prompt: { value: "a photo of a sneaker" }, seed: { value: "2" }, guidance: { value: "" }, go: { disabled: true }, status: { textContent: "" },
      form: { addEventListener: (_: string, f: typeof submit) => { submit = f; } },
      grid: { getContext: () => ({ putImageData: (img: { data: Uint8ClampedArray }, x: number) => drawn.push({ data: img.data, x }) }) },
    };
    Object.assign(globalThis, {
      document: { getElementById: (id: string) => elements[id] }, location: { href: `${base}/` },
      ImageData: class { constructor(readonly data: Uint8ClampedArray, readonly width: number, readonly height: number) {} },
    });
    const pageScript = join(dir, "page.mjs");
    writeFileSync(pageScript, script);
    await import(pathToFileURL(pageScript).href);
    assert.equal(elements.go.disabled, false, String(elements.status.textContent));
    // Node has no WebGPU adapter: the page falls back to WebAssembly and says so
    assert.match(String(elements.status.textContent), /^ready on WebAssembly \(no WebGPU adapter in this browser\): 1-step generator/);
    assert.equal(elements.guidance.value, 4.5);
    await submit!({ preventDefault() {} });
    assert.match(String(elements.status.textContent), /^8 images in \d+ ms on WebAssembly$/);
    assert.deepEqual(drawn.map((d) => d.x), [0, 28, 56, 84, 112, 140, 168, 196]);
    assert.ok(drawn.every((d) => d.data.length === 28 * 28 * 4) && drawn[0].data.some((v, i) => v !== drawn[1].data[i]), "8 different images");

    const viaHttp = await web.loadGenerator(ort, web.fromUrl(`${base}/model/`));
    const viaFile = await web.loadGenerator(ort, (name: string) => readFile(join(out, name)));
    const [a, b] = [await viaHttp.generate(["a bag"], { seed: 3 }), await viaFile.generate(["a bag"], { seed: 3 })];
    assert.deepEqual(Array.from(a.images), Array.from(b.images));
    await viaHttp.release(); await viaFile.release();
  } finally {
    server.close();
  }
});

