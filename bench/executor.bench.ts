/**
 * The loop's two programs on each executor (issue #5): ms per whole training step (JVP → target →
 * loss/grad → clip → optimiser, one program) and per teacher pass, jax-js `jit` vs ONNX Runtime,
 * with 1 and 2 threads (TBCM_THREADS sets jax-js's pool and ORT's intra-op threads), for each
 * config. Each (config, threads, executor) runs in its own process (jax-js fixes its pool when it
 * loads). The programs are those `distill` uses (`distillPrograms`), fed as the loop feeds them:
 *
 * - pair pass: `drawPairs` as the loop calls it (host draws + `programs.pairs`: the teacher's
 *   trajectory for TBCM, its guided velocity at noised real latents for sCM);
 * - training step: `programs.step` on a batch from the teacher pass, the weights carried from the
 *   previous step (host arrays for ONNX, jax-js arrays for jax), up to the stats on the host;
 * - loop iteration: `drawPairs` (host RNG, batch assembly, teacher pass) + the training step;
 * - first call: tracing/compiling both programs (ONNX: trace, lower, create the sessions).
 *
 *   npx tsx bench/executor.bench.ts [configs/gmm.yaml bench/configs/gmm-large.yaml] [--iters 30]
 *
 * GMM configs start from a random student, stack configs from the teacher copy. Medians in ms;
 * ms_per_pair = loop iteration / training pairs per step.
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: { iters: { type: "string" }, worker: { type: "boolean" }, executor: { type: "string" } },
  allowPositionals: true,
});
const configs = positionals.length ? positionals : ["configs/gmm.yaml", "bench/configs/gmm-large.yaml"];
const threadList = (process.env.BENCH_THREADS ?? "1,2").split(",").map(Number);
const iterations = values.iters === undefined ? undefined : Number(values.iters);

type Row = Record<string, number | string>;

if (!values.worker) {
  const cols = ["pairs_ms", "train_step_ms", "loop_iteration_ms", "ms_per_pair", "first_call_ms", "peak_rss_mb"];
  for (const config of configs) {
    const rows: Row[] = [];
    for (const threads of threadList) {
      for (const executor of ["jax", "onnx"]) {
        const args = ["--import", "tsx", new URL(import.meta.url).pathname, config, "--worker", "--executor", executor];
        if (iterations !== undefined) args.push("--iters", String(iterations));
        const r = spawnSync(process.execPath, args, { env: { ...process.env, TBCM_THREADS: String(threads) }, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`${config} ${executor} ${threads} threads:\n${r.stderr}`);
        rows.push({ threads, executor, ...JSON.parse(r.stdout.trim().split("\n").pop()!) });
      }
    }
    console.log(`\nconfig ${config} (${rows[0].method}, ${rows[0].params} parameters, ${rows[0].pairs} pairs per step), `
      + `median ms over ${rows[0].iters} iterations after ${rows[0].warmup} warm-up ones`);
    console.log(`| threads | executor | ${cols.join(" | ")} |`);
    console.log(`|---|---|${cols.map(() => "---").join("|")}|`);
    for (const r of rows) {
      console.log(`| ${r.threads} | ${r.executor} | ${cols.map((c) => (r[c] as number).toFixed(c === "peak_rss_mb" || c === "first_call_ms" ? 0 : 2)).join(" | ")} |`);
    }
    for (const threads of threadList) {
      const [jax, onnx] = ["jax", "onnx"].map((e) => rows.find((r) => r.threads === threads && r.executor === e)!);
      const ratio = (c: string) => ((jax[c] as number) / (onnx[c] as number)).toFixed(2);
      console.log(`${threads} thread(s): onnx is ${ratio("train_step_ms")}× jax on the training step, `
        + `${ratio("pairs_ms")}× on the pair pass, ${ratio("loop_iteration_ms")}× on a loop iteration`);
    }
  }
} else {
  await import("../src/numerics/threads.ts");
  const { tree } = await import("@jax-js/jax");
  const { loadConfig, lrSchedule } = await import("../src/config/schema.ts");
  const { routeAngles } = await import("../src/method/route.ts");
  const { tangentRatio } = await import("../src/method/loss.ts");
  const { makeOptimizer } = await import("../src/train/optim.ts");
  const { learningRate } = await import("../src/train/schedule.ts");
  const { distillPrograms, drawPairs, evalKeys } = await import("../src/train/distill.ts");
  const { teacherKind } = await import("../src/run/kinds.ts");
  const { parameterCount } = await import("../src/numerics/tree.ts");
  const { key, foldIn } = await import("../src/numerics/random.ts");
  type A = import("@jax-js/jax").Array;

  const cfg = { ...loadConfig(positionals[0]), executor: values.executor as "jax" | "onnx" };
  const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
  const route = routeAngles(cfg.route.shift, cfg.route.steps);
  const optimizer = makeOptimizer(cfg.optim);
  // GMM configs: a random student (its init file is ignored); stack configs: the teacher copy.
  const params = problem.initialStudent(key(0));
  const nParams = parameterCount(params as never);
  const state = optimizer.init(tree.leaves(params as never) as A[]);
  const programs = distillPrograms(cfg, problem, optimizer, params, state);
  let weights = programs.initialWeights;
  // Large models: fewer iterations (a jax-js step takes seconds there).
  const iters = iterations ?? (nParams > 5e5 ? 10 : 50);
  const warmup = nParams > 5e5 ? 2 : 10;

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

  async function time(body: (i: number) => Promise<() => Promise<void>>): Promise<number> {
    const ts: number[] = [];
    for (let i = 0; i < warmup + iters; i++) {
      const run = await body(i); // untimed preparation, then the timed part
      const start = performance.now();
      await run();
      if (i >= warmup) ts.push(performance.now() - start);
    }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  }
  const pairs = cfg.train.promptsPerStep * (cfg.route.steps - 1);
  const result: Row = { method: cfg.method, params: nParams, pairs, iters, warmup, first_call_ms: firstCall };
  // the pair pass as the loop runs it: host draws + the teacher's trajectory (TBCM) or its velocity at noised data (sCM)
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
  result.loop_iteration_ms = await time(async (i) => async () => {
    await stepOnce(i, await drawPairs(cfg, problem, stepKey(i), route, programs.pairs));
  });
  result.ms_per_pair = (result.loop_iteration_ms as number) / pairs;
  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  await programs.dispose();
  weights.dispose();
  problem.dispose();
  console.log(JSON.stringify(result));
}
