/**
 * ONNX Runtime's device (README "GPU"): config and CLI validation (always), and — when a WebGPU
 * adapter is there (CI: scripts/lavapipe.sh, software Vulkan) — a tiny distillation and its
 * exported generator on webgpu against the CPU.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tempDir } from "../tempDir.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { ConfigError, describeConfig, executorOf, loadConfig, parseConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/index.ts";
import { sessionOptions, probeDevice } from "../../src/executor/onnxRun.ts";
import { inference } from "../../src/executor/inference.ts";
import { numpy as np } from "@jax-js/jax";

const tiny = new URL("../fixtures/tiny.yaml", import.meta.url).pathname;
const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;
const tmp = (p = "tbcm-device-") => tempDir(p);

test("config key device: cpu by default, one of cpu/webgpu/cuda, and only with executor onnx", () => {
  assert.equal(parseConfig({}).device, "cpu");
  assert.equal(parseConfig({ device: "webgpu" }).device, "webgpu");
  assert.equal(parseConfig({ device: "cuda" }).device, "cuda");
  assert.throws(() => parseConfig({ device: "tpu" }), (e) => e instanceof ConfigError && /config key "device": expected one of cpu, webgpu, cuda, got "tpu"/.test(e.message));
  assert.throws(() => parseConfig({ executor: "jax", device: "webgpu" }), /config key "device": webgpu needs executor: onnx/);
  assert.equal(parseConfig({ executor: "jax" }).device, "cpu");
  assert.match(describeConfig({}), /^device: "cpu" +# cpu \| webgpu \| cuda$/m);
  // a CPU config names the executor as before; another device goes with it
  assert.equal(executorOf(parseConfig({})), "onnx");
  assert.deepEqual(executorOf(parseConfig({ device: "webgpu" })), { kind: "onnx", device: "webgpu" });
  assert.throws(() => inference({ kind: "jax", device: "cuda" }, [], (_, x) => x), /cuda needs executor: onnx/);
});

test("the CPU's session options are those of before the device option (no executionProviders key)", () => {
  assert.equal("executionProviders" in sessionOptions({}), false);
  assert.equal("executionProviders" in sessionOptions({ device: "cpu" }), false);
  assert.deepEqual(sessionOptions({ device: "webgpu" }).executionProviders, ["webgpu"]);
  assert.deepEqual(sessionOptions({ device: "cuda" }).executionProviders, ["cuda"]);
});

/** A failing command: exit ≠ 0, its first stderr line that is not a driver's warning matches, no stack, nothing at `out`. */
function fails(args: string[], message: RegExp, env: NodeJS.ProcessEnv = process.env, out?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env });
  assert.notEqual(r.status, 0, r.stdout);
  const line = r.stderr.split("\n").find((l) => l.startsWith("tbcm:")) ?? r.stderr;
  assert.match(line, message);
  // (Dawn, the WebGPU implementation, prints its own warnings with native "at file.cpp" lines)
  assert.doesNotMatch(r.stderr, /\n\s+at .*\.[cm]?[jt]s:\d+/, "no stack trace");
  if (out) assert.equal(existsSync(out), false, "nothing written");
}

test("--device on the CLI: validated, only where programs run, refused with executor jax", () => {
  const dir = tmp();
  const out = join(dir, "run");
  const jax = join(dir, "jax.yaml");
  writeFileSync(jax, `executor: jax\n${readFileSync(tiny, "utf8")}`);
  fails(["distill", "--config", tiny, "--out", out, "--device", "tpu"], /--device is one of cpu, webgpu, cuda, got "tpu"/, process.env, out);
  fails(["distill", "--config", jax, "--out", out, "--device", "webgpu"], /--device: webgpu needs executor: onnx/, process.env, out);
  fails(["eval", "--run", out, "--device", "webgpu"], /--device is for eval --recompute/);
  fails(["export", "--run", out, "--out", out, "--device", "webgpu"], /Unknown option '--device': tbcm export does not take it/);
  fails(["sample", "--model", "teacher", "--prompt", "a bag", "--out", join(dir, "x.png"), "--device", "gpu"], /--device is one of/);
});

test("webgpu without a Vulkan driver is one line that says what to install, before the run directory is made", () => {
  const out = join(tmp(), "run");
  // no ICD at all: the Vulkan loader finds no driver (software or hardware)
  fails(["distill", "--config", tiny, "--out", out, "--device", "webgpu"], /device webgpu: ONNX Runtime found no WebGPU adapter; it needs a Vulkan driver .*scripts\/lavapipe\.sh/,
    { ...process.env, VK_ICD_FILENAMES: join(tmpdir(), "no-such-icd.json"), VK_DRIVER_FILES: join(tmpdir(), "no-such-icd.json") }, out);
});

test("cuda without its provider says how to install it", { skip: cudaInstalled() ? "the CUDA provider is installed here" : false }, () => {
  const out = join(tmp(), "run");
  fails(["distill", "--config", tiny, "--out", out, "--device", "cuda"], /device cuda: .*ONNXRUNTIME_NODE_INSTALL=cuda12/, process.env, out);
});

function cudaInstalled(): boolean {
  const dir = join(new URL(import.meta.resolve("onnxruntime-node")).pathname, "../../bin/napi-v6", process.platform, process.arch);
  return existsSync(join(dir, "libonnxruntime_providers_cuda.so"));
}

/** Why WebGPU tests cannot run here, or undefined when an adapter answers. */
async function noWebGpu(): Promise<string | undefined> {
  try {
    await probeDevice("webgpu");
    return undefined;
  } catch (e) {
    return `no WebGPU adapter (${String((e as Error).message).split(";")[0]}); CI provides one with scripts/lavapipe.sh`;
  }
}
const webgpuSkip = (await noWebGpu()) ?? false;
if (webgpuSkip) process.stderr.write(`device.test.ts: WebGPU tests skipped: ${webgpuSkip}\n`);

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-6);

test("a tiny distillation on webgpu: the CPU run's losses and metrics to 1e-5 relative; its export agrees on webgpu", { skip: webgpuSkip }, async () => {
  const cfg = loadConfig(tiny);
  const cpu = tmp(), gpu = tmp();
  const mCpu = (await distill(cfg, cpu)).metrics as Record<string, number>;
  const mGpu = (await distill({ ...cfg, device: "webgpu" }, gpu)).metrics as Record<string, number>;
  const losses = (d: string) => readFileSync(join(d, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.loss !== undefined).map((r) => r.loss as number);
  const [la, lb] = [losses(cpu), losses(gpu)];
  assert.equal(la.length, cfg.train.steps);
  la.forEach((v, i) => assert.ok(close(v, lb[i], 1e-5), `loss at step ${i + 1}: cpu ${v}, webgpu ${lb[i]}`));
  for (const [k, v] of Object.entries(mCpu)) assert.ok(close(v, mGpu[k], 1e-5), `${k}: cpu ${v}, webgpu ${mGpu[k]}`);
  assert.equal(JSON.parse(readFileSync(join(gpu, "config.json"), "utf8")).device, "webgpu");

  // the exported generator (of the webgpu run) on both providers
  await exportStudent(gpu, join(gpu, "export"), 3);
  const file = join(gpu, "export", "generator.onnx");
  const feeds = {
    noise: new ort.Tensor("float32", Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1)), [3, 4]),
    cond: new ort.Tensor("float32", Float32Array.of(1, 0, 0, 0, 0, 1, 0, 1, 0), [3, 3]),
    guidance: new ort.Tensor("float32", new Float32Array(3).fill(4.5), [3, 1]),
  };
  const runOn = async (device: "cpu" | "webgpu") => {
    const s = await ort.InferenceSession.create(file, sessionOptions({ device }));
    try {
      return (await s.run(feeds)).latent.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const [a, b] = [await runOn("cpu"), await runOn("webgpu")];
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-5 * Math.max(1, Math.abs(v)), `latent ${i}: cpu ${v}, webgpu ${b[i]}`));
});

test("inference programs take the device: webgpu gives the CPU's numbers", { skip: webgpuSkip }, async () => {
  const w = np.array(Float32Array.from({ length: 64 }, (_, i) => Math.cos(i))).reshape([8, 8]);
  const x = { data: Float32Array.from({ length: 32 }, (_, i) => i / 32), shape: [4, 8] };
  const f = (p: typeof w, a: typeof w) => np.tanh(np.matmul(a, p));
  const cpu = inference("onnx", w, f), gpu = inference({ kind: "onnx", device: "webgpu" }, w, f);
  const [[a], [b]] = [await cpu.run([x]), await gpu.run([x])];
  a.data.forEach((v, i) => assert.ok(Math.abs(v - b.data[i]) < 1e-6, `${v} vs ${b.data[i]}`));
  await cpu.dispose();
  await gpu.dispose();
  w.dispose();
});
