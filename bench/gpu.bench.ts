/**
 * The loop's programs and the exported generator per ONNX Runtime device (README "GPU"): ms per
 * training step and per teacher pass (the pair pass as the loop runs it), the copy of the
 * weights to the host, generator images/s, first call (trace, lower, sessions, shader compiles)
 * and peak RSS; each (config, device) in its own process. Devices:
 *
 * - cpu: ONNX Runtime's CPU provider (the weights are host arrays between steps);
 * - webgpu: the weights stay on the device between steps (gpu-buffer outputs fed back);
 * - webgpu-copy: the same provider with the weights copied device → host → device every step
 *   (what a plain `executionProviders: ["webgpu"]` does).
 *
 * cpu_nodes: the nodes of the step's and the pair pass's sessions that the provider left to
 * ONNX Runtime's CPU provider, by op (from its verbose log, TBCM_ORT_VERBOSE=1, in a separate
 * process that only builds the programs).
 *
 * download_ms: one `Weights.download()` of the step's device weights (what a checkpoint, curve
 * or EMA update costs on webgpu; 0 on cpu). webgpu needs an adapter: on a machine without a GPU,
 * eval "$(scripts/lavapipe.sh .lavapipe)" first (software Vulkan: correctness only, not speed).
 *
 *   npx tsx bench/gpu.bench.ts [configs/gmm-smoke.yaml bench/configs/gmm-smoke-wide.yaml] [--iters 10] [--devices cpu,webgpu,webgpu-copy]
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: { iters: { type: "string" }, worker: { type: "boolean" }, device: { type: "string" }, devices: { type: "string" }, placement: { type: "boolean" } },
  allowPositionals: true,
});
const configs = positionals.length ? positionals : ["configs/gmm-smoke.yaml", "bench/configs/gmm-smoke-wide.yaml"];
const iters = Number(values.iters ?? 10);

type Row = Record<string, number | string>;

/** Nodes ONNX Runtime placed on its CPU provider, by op, from its verbose log ("Node placements"). */
function cpuNodes(log: string): string {
  const ops = new Map<string, number>();
  let inCpu = false;
  for (const line of log.split("\n")) {
    if (/VerifyEachNodeIsAssignedToAnEp\]\s+Node\(s\) placed on \[CPUExecutionProvider\]/.test(line)) { inCpu = true; continue; }
    const m = /VerifyEachNodeIsAssignedToAnEp\]\s{3}(\w+) \(/.exec(line);
    if (inCpu && m) ops.set(m[1], (ops.get(m[1]) ?? 0) + 1);
    else inCpu = false;
  }
  const total = [...ops.values()].reduce((a, b) => a + b, 0);
  return total === 0 ? "0" : `${total} (${[...ops].map(([op, n]) => `${op}×${n}`).join(" ")})`;
}

if (!values.worker) {
  const devices = (values.devices ?? "cpu,webgpu,webgpu-copy").split(",");
  const cols = ["train_step_ms", "pairs_ms", "download_ms", "generator_img_s", "first_call_ms", "peak_rss_mb", "cpu_nodes"];
  for (const config of configs) {
    const rows: Row[] = [];
    for (const device of devices) {
      const r = spawnSync(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, config, "--worker", "--device", device, "--iters", String(iters)], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`${config} ${device}:\n${r.stderr.split("\n").filter((l) => !/^Warning|artificially|VerifyEach/.test(l)).join("\n")}`);
      const row: Row = { device, ...JSON.parse(r.stdout.trim().split("\n").pop()!) };
      row.cpu_nodes = "-";
      if (device !== "cpu") {
        const v = spawnSync(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, config, "--worker", "--placement", "--device", device], {
          encoding: "utf8", env: { ...process.env, TBCM_ORT_VERBOSE: "1" }, maxBuffer: 1 << 30,
        });
        row.cpu_nodes = v.status === 0 ? cpuNodes(v.stderr) : "?";
      }
      rows.push(row);
    }
    console.log(`\nconfig ${config} (${rows[0].params} parameters, ${rows[0].pairs} pairs per step; generator batch ${rows[0].gen_batch}), median ms over ${iters} iterations after 2 warm-up ones`);
    console.log(`| device | ${cols.join(" | ")} |`);
    console.log(`|---|${cols.map(() => "---").join("|")}|`);
    for (const r of rows) console.log(`| ${r.device} | ${cols.map((c) => typeof r[c] === "string" ? r[c] : (r[c] as number).toFixed(["peak_rss_mb", "first_call_ms", "generator_img_s"].includes(c) ? 0 : 2)).join(" | ")} |`);
  }
} else {
  await import("../src/numerics/threads.ts");
  const { tree } = await import("@jax-js/jax");
  const ort = await import("onnxruntime-node");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { loadConfig, lrSchedule, configOf } = await import("../src/config/schema.ts");
  const { routeAngles } = await import("../src/method/route.ts");
  const { tangentRatio } = await import("../src/method/loss.ts");
  const { makeOptimizer } = await import("../src/train/optim.ts");
  const { learningRate } = await import("../src/train/schedule.ts");
  const { distillPrograms, drawPairs, evalKeys } = await import("../src/train/distill.ts");
  const { teacherKind } = await import("../src/run/kinds.ts");
  const { parameterCount } = await import("../src/numerics/tree.ts");
  const { key, foldIn, normal } = await import("../src/numerics/random.ts");
  const { exportGmmStudent } = await import("../src/gmm/export.ts");
  const { sessionOptions } = await import("../src/executor/onnxRun.ts");
  type A = import("@jax-js/jax").Array;

  const variant = values.device!;
  const device = variant === "cpu" ? "cpu" : "webgpu";
  const cfg = { ...loadConfig(positionals[0]), device } as const;
  const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
  const route = routeAngles(cfg.route.shift, cfg.route.steps);
  const optimizer = makeOptimizer(cfg.optim);
  const params = problem.initialStudent(key(0));
  const nParams = parameterCount(params as never);
  const state = optimizer.init(tree.leaves(params as never) as A[]);
  const programs = distillPrograms(cfg, problem, optimizer, params, state, { keepOnDevice: variant !== "webgpu-copy" });
  let weights = programs.initialWeights;
  const warmup = 2;

  const stepOnce = async (i: number, batch: Awaited<ReturnType<typeof drawPairs>>) => {
    const lr = learningRate(i, cfg.train.steps, cfg.optim.lr, lrSchedule(cfg.optim));
    const out = await programs.step(weights, batch, tangentRatio(i, cfg.loss), optimizer.hyper(i, lr));
    weights = out.weights;
    if (!(out.stats[5] === 1)) throw new Error(`step ${i} was skipped (non-finite)`);
  };
  const stepKey = (i: number) => foldIn(foldIn(key(cfg.seed), 4), i);
  const t0 = performance.now();
  await stepOnce(0, await drawPairs(cfg, problem, stepKey(0), route, programs.pairs));
  const firstCall = performance.now() - t0;
  if (values.placement) {
    weights.dispose();
    await programs.dispose();
    problem.dispose();
    process.exit(0);
  }

  async function time(body: (i: number) => Promise<() => Promise<void>>): Promise<number> {
    const ts: number[] = [];
    for (let i = 0; i < warmup + iters; i++) {
      const run = await body(i);
      const start = performance.now();
      await run();
      if (i >= warmup) ts.push(performance.now() - start);
    }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  }
  const result: Row = { params: nParams, pairs: cfg.train.promptsPerStep * (cfg.route.steps - 1), first_call_ms: firstCall };
  result.pairs_ms = await time(async (i) => async () => {
    const b = await drawPairs(cfg, problem, stepKey(i), route, programs.pairs);
    await b.xt.ref.data();
    tree.dispose(b as never);
  });
  result.train_step_ms = await time(async (i) => {
    const batch = await drawPairs(cfg, problem, stepKey(i), route, programs.pairs);
    await batch.xt.ref.data();
    return () => stepOnce(i, batch);
  });
  // one copy of fresh device weights to the host (a new step each time: download() caches)
  result.download_ms = await time(async (i) => {
    const batch = await drawPairs(cfg, problem, stepKey(i), route, programs.pairs);
    await stepOnce(i, batch);
    return () => weights.download();
  });
  await weights.download();
  const student = weights.params;

  // the exported 1-step generator on this device, batch 256
  const gen_batch = 256;
  const dir = mkdtempSync(join(tmpdir(), "tbcm-gpu-bench-"));
  const gcfg = configOf(cfg, "gmm");
  exportGmmStudent(gcfg, student as never, dir, { batch: gen_batch });
  const session = await ort.InferenceSession.create(join(dir, "generator.onnx"), sessionOptions({ device }));
  const d = gcfg.teacher.dim, C = gcfg.teacher.prompts;
  const cond = new Float32Array(gen_batch * C);
  for (let b = 0; b < gen_batch; b++) cond[b * C + (b % C)] = 1;
  const feeds = {
    noise: new ort.Tensor("float32", normal(key(1), gen_batch * d), [gen_batch, d]),
    cond: new ort.Tensor("float32", cond, [gen_batch, C]),
    guidance: new ort.Tensor("float32", new Float32Array(gen_batch).fill(4.5), [gen_batch, 1]),
  };
  const genMs = await time(async () => async () => { await session.run(feeds); });
  result.generator_img_s = gen_batch / (genMs / 1000);
  result.gen_batch = gen_batch;
  await session.release();
  rmSync(dir, { recursive: true, force: true });

  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  weights.dispose();
  await programs.dispose();
  problem.dispose();
  console.log(JSON.stringify(result));
}
