/**
 * The loop with the next step's pair pass (the teacher's trajectories, which do not depend on the
 * student) run while the current training step runs, against the loop as `distill` runs it (pair
 * pass, then training step): ms per iteration, alternating blocks of the two in one process, and
 * whether both give the same training losses.
 *
 *   npx tsx bench/pipeline.bench.ts [configs/fmnist-tbcm.yaml] [--iters 40] [--block 10]
 */
import { parseArgs } from "node:util";
await import("../src/numerics/threads.ts");
const { tree } = await import("@jax-js/jax");
const { loadConfig, lrSchedule } = await import("../src/config/schema.ts");
const { routeAngles } = await import("../src/method/route.ts");
const { tangentRatio } = await import("../src/method/loss.ts");
const { makeOptimizer } = await import("../src/train/optim.ts");
const { learningRate } = await import("../src/train/schedule.ts");
const { distillPrograms, drawPairs, evalKeys } = await import("../src/train/distill.ts");
const { teacherKind } = await import("../src/run/kinds.ts");
const { key, foldIn } = await import("../src/numerics/random.ts");
type A = import("@jax-js/jax").Array;

const { values, positionals } = parseArgs({ options: { iters: { type: "string" }, block: { type: "string" } }, allowPositionals: true });
const cfg = loadConfig(positionals[0] ?? "configs/fmnist-tbcm.yaml");
const iters = Number(values.iters ?? 40), block = Number(values.block ?? 10);
const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
const route = routeAngles(cfg.route.shift, cfg.route.steps);
const optimizer = makeOptimizer(cfg.optim);
const stepKey = (i: number) => foldIn(foldIn(key(cfg.seed), 4), i);
type Batch = Awaited<ReturnType<typeof drawPairs>>;

/** A fresh student and programs; `run(n, pipelined)` trains n steps and returns ms per step and the losses. */
function trainer() {
  const params = problem.initialStudent(key(0));
  const state = optimizer.init(tree.leaves(params as never) as A[]);
  const programs = distillPrograms(cfg, problem, optimizer, params, state);
  let weights = programs.initialWeights;
  let i = 0;
  const step = async (batch: Batch) => {
    const lr = learningRate(i, cfg.train.steps, cfg.optim.lr, lrSchedule(cfg.optim));
    const out = await programs.step(weights, batch, tangentRatio(i, cfg.loss), optimizer.hyper(i, lr));
    weights = out.weights;
    i++;
    return out.stats[0];
  };
  return {
    async run(n: number, pipelined: boolean): Promise<{ ms: number; losses: number[] }> {
      const losses: number[] = [];
      const t0 = performance.now();
      let next = drawPairs(cfg, problem, stepKey(i), route, programs.pairs);
      for (let k = 0; k < n; k++) {
        const batch = await next;
        if (pipelined) {
          // the next pair pass starts now and runs beside this training step
          if (k + 1 < n) next = drawPairs(cfg, problem, stepKey(i + 1), route, programs.pairs);
          losses.push(await step(batch));
        } else {
          losses.push(await step(batch));
          if (k + 1 < n) next = drawPairs(cfg, problem, stepKey(i), route, programs.pairs);
        }
      }
      return { ms: (performance.now() - t0) / n, losses };
    },
    async dispose() { await programs.dispose(); weights.dispose(); },
  };
}

const seq = trainer(), pipe = trainer();
await seq.run(2, false); await pipe.run(2, true); // compile
const ms = { seq: [] as number[], pipe: [] as number[] };
const losses = { seq: [] as number[], pipe: [] as number[] };
for (let b = 0; b < iters / block; b++) {
  for (const [name, t, p] of [["seq", seq, false], ["pipe", pipe, true]] as const) {
    const r = await t.run(block, p);
    ms[name].push(r.ms);
    losses[name].push(...r.losses);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`| loop | ms per step (median of ${iters / block} blocks of ${block}) | blocks |`);
console.log(`|---|---|---|`);
console.log(`| pair pass, then training step (distill today) | ${median(ms.seq).toFixed(0)} | ${ms.seq.map((x) => x.toFixed(0)).join(", ")} |`);
console.log(`| next pair pass beside the training step | ${median(ms.pipe).toFixed(0)} | ${ms.pipe.map((x) => x.toFixed(0)).join(", ")} |`);
console.log(`ratio ${(median(ms.seq) / median(ms.pipe)).toFixed(2)}; the same losses: ${losses.seq.every((l, k) => l === losses.pipe[k])} (${losses.seq.length} steps)`);
await seq.dispose(); await pipe.dispose();
problem.dispose();
