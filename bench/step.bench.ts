/**
 * Time per TBCM training step on the benchmark config, split into teacher pass, JVP,
 * forward+backward and optimiser, plus the whole compiled step; with 1 and 2 jax-js threads
 * (each in its own process, since the thread count is fixed when jax-js loads); peak RSS.
 *
 *   npx tsx bench/step.bench.ts [configs/gmm.yaml] [--iters 100]
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({ options: { iters: { type: "string" }, worker: { type: "boolean" } }, allowPositionals: true });
const configPath = positionals[0] ?? "configs/gmm.yaml";
const iters = Number(values.iters ?? 100);

if (!values.worker) {
  const rows: Record<string, number>[] = [];
  for (const threads of [1, 2]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, configPath, "--worker", "--iters", String(iters)], {
      env: { ...process.env, TBCM_THREADS: String(threads) }, encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(r.stderr);
    rows.push({ threads, ...JSON.parse(r.stdout.trim().split("\n").pop()!) });
  }
  const cols = ["teacher_pass_ms", "jvp_ms", "fwd_bwd_ms", "optimizer_ms", "parts_sum_ms", "whole_step_ms", "peak_rss_mb"];
  console.log(`config ${configPath}, ${iters} timed iterations after warm-up, median ms`);
  console.log(`| threads | ${cols.join(" | ")} |`);
  console.log(`|---|${cols.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.threads} | ${cols.map((c) => r[c].toFixed(c === "peak_rss_mb" ? 0 : 2)).join(" | ")} |`);
} else {
  await import("../src/numerics/threads.ts");
  const { numpy: np, jit, jvp, valueAndGrad, tree } = await import("@jax-js/jax");
  const { loadConfig, configOf } = await import("../src/config/schema.ts");
  const { column } = await import("../src/train/problem.ts");
  const { buildGmmTeacher, conditionRows } = await import("../src/gmm/teacher.ts");
  const { sampleTrajectory, trainingPairs } = await import("../src/method/trajectory.ts");
  const { routeAngles, jitterRoute } = await import("../src/method/route.ts");
  const { jvpTangents, scmLoss } = await import("../src/method/loss.ts");
  const { initMlp } = await import("../src/models/mlp.ts");
  const { mlpStudent } = await import("../src/gmm/student.ts");
  const { makeTrainStep } = await import("../src/train/step.ts");
  const { makeOptimizer } = await import("../src/train/optim.ts");
  const { studentConfig } = await import("../src/gmm/student.ts");
  const { key, normal, foldIn } = await import("../src/numerics/random.ts");
  type A = import("@jax-js/jax").Array;

  const cfg = configOf(loadConfig(configPath), "gmm");
  const problem = buildGmmTeacher(cfg);
  const B = cfg.train.promptsPerStep, d = cfg.teacher.dim, P = cfg.teacher.prompts, N = cfg.route.steps;
  const pairs = B * (N - 1);
  const route = routeAngles(cfg.route.shift, N);
  const opt = makeOptimizer(cfg.optim);
  let params = initMlp(key(0), studentConfig(cfg));
  let state = opt.init(tree.flatten(params as never)[0] as A[]);

  const teacherPass = jit((noise: A, angles: A, c: A, u: A, w: A) => {
    const traj = sampleTrajectory(problem.velocity, noise.mul(0.5), angles, c, u, w);
    traj.endpoint.ref.dispose();
    return trainingPairs(traj);
  });
  const jvpOnly = jit((p: typeof params, u: A, t: A, vu: A, vt: A, c: A, w: A) => {
    const out = jvp((uu: A, tt: A) => ((): A => { const [F, lv] = mlpStudent(tree.ref(p), uu, tt, c.ref, w.ref); lv.dispose(); return F; })(), [u, t], [vu, vt]);
    tree.dispose(p); c.dispose(); w.dispose();
    return out;
  });
  const fwdBwd = jit((p: typeof params, u: A, t: A, target: A, c: A, w: A, keep: A) => {
    const out = valueAndGrad((pp: typeof params) => {
      const [F, lv] = mlpStudent(pp, u.ref, t.ref, c.ref, w.ref);
      return scmLoss(F, lv, target.ref, t.ref, keep.ref).loss;
    })(p as never);
    tree.dispose([u, t, target, c, w, keep]);
    return out;
  });
  const optOnly = jit((g: A[], s: typeof state, p: A[], h: Record<string, A>) => opt.update(g, s, p, h));
  const whole = jit(makeTrainStep(mlpStudent, opt, cfg.train.gradClip));

  const inputs = (i: number) => {
    const k = foldIn(key(1), i);
    const prompts = globalThis.Array.from({ length: B }, (_, b) => b % P);
    return {
      noise: np.array(normal(k, B * d)).reshape([B, d]), angles: np.array(jitterRoute(k, route)),
      cond: conditionRows(prompts, P), uncond: conditionRows(prompts.map(() => -1), P), w: column(prompts.map(() => 4.5)),
    };
  };
  const pairInputs = (i: number) => ({
    xt: np.array(normal(foldIn(key(2), i), pairs * d)).reshape([pairs, d]),
    t: column(globalThis.Array.from({ length: pairs }, (_, r) => route[1 + Math.floor(r / B)])),
    dxdt: np.array(normal(foldIn(key(3), i), pairs * d)).reshape([pairs, d]),
    cond: conditionRows(globalThis.Array.from({ length: pairs }, (_, r) => r % P), P), w: column(new Float32Array(pairs).fill(4.5)),
    keep: np.ones([pairs, 1]), x0: np.zeros([pairs, d]),
  });
  const hyper = (i: number) => Object.fromEntries(Object.entries(opt.hyper(i, cfg.optim.lr)).map(([n, v]) => [n, np.array(v)]));

  async function time(name: string, body: (i: number) => Promise<void>): Promise<number> {
    for (let i = 0; i < 10; i++) await body(i);
    const ts: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await body(i);
      ts.push(performance.now() - t0);
    }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  }
  const result: Record<string, number> = {};
  result.teacher_pass_ms = await time("teacher", async (i) => {
    const x = inputs(i);
    const out = teacherPass(x.noise, x.angles, x.cond, x.uncond, x.w);
    await out[0].ref.data(); tree.dispose(out);
  });
  result.jvp_ms = await time("jvp", async (i) => {
    const b = pairInputs(i);
    const [vu, vt] = jvpTangents(b.dxdt, b.t.ref);
    const out = jvpOnly(tree.ref(params), b.xt.mul(2), b.t, vu, vt, b.cond, b.w);
    await out[1].ref.data(); tree.dispose(out); b.keep.dispose(); b.x0.dispose();
  });
  result.fwd_bwd_ms = await time("fwdbwd", async (i) => {
    const b = pairInputs(i);
    b.x0.dispose();
    const [loss, grads] = fwdBwd(tree.ref(params), b.xt.mul(2), b.t, b.dxdt, b.cond, b.w, b.keep);
    await loss.data(); tree.dispose(grads as never);
  });
  result.optimizer_ms = await time("opt", async (i) => {
    const leaves = tree.flatten(params as never)[0] as A[];
    const grads = leaves.map((p) => p.ref.mul(1e-3));
    const [np2, ns] = optOnly(grads, state, leaves.map((p) => p.ref), hyper(i));
    tree.dispose(params as never);
    params = tree.unflatten(tree.structure(params as never), np2) as typeof params;
    state = ns;
    await np2[0].ref.data();
  });
  result.parts_sum_ms = result.teacher_pass_ms + result.jvp_ms + result.fwd_bwd_ms + result.optimizer_ms;
  result.whole_step_ms = await time("whole", async (i) => {
    const x = inputs(i);
    const [xt, dxdt] = teacherPass(x.noise, x.angles, x.cond, x.uncond, x.w);
    const b = pairInputs(i);
    b.xt.dispose(); b.dxdt.dispose();
    const [p, s, stats] = whole(params, state, { ...b, xt, dxdt }, np.array(1), hyper(i));
    params = p; state = s;
    await stats.data();
  });
  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify(result));
}
