/**
 * The distillation loop (TBCM, or the sCM baseline): draw pairs, take a training step, log,
 * evaluate, checkpoint. All randomness of step i comes from `foldIn(key(seed), i)`, so a resumed
 * run repeats the uninterrupted one exactly.
 */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { type TbcmConfig, ConfigError, guidanceSchedule, lrSchedule, configToRaw, parseConfig, executorOf } from "../config/schema.ts";
import { SIGMA_D } from "../config/defaults.ts";
import { type Key, key, foldIn, normal, uniform } from "../numerics/random.ts";
import { type Tree, toHost, parameterCount } from "../numerics/tree.ts";
import { saveParams } from "../numerics/params.ts";
import { routeAngles, drawRoute, legRoute } from "../method/route.ts";
import { sampleTrajectory, trainingPairs, legPairs, blackFilter } from "../method/trajectory.ts";
import { noisy } from "../method/trigflow.ts";
import { scmPairs, scmTimes } from "../method/scmPairs.ts";
import { tangentRatio } from "../method/loss.ts";
import { learningRate } from "./schedule.ts";
import { updateEma } from "./ema.ts";
import { type PairBatch, STEP_STATS, makeTrainStep } from "./step.ts";
import { type LeafState, type Optimizer, makeOptimizer } from "./optim.ts";
import { type PairPass, WeightLayout, Weights, loopPrograms } from "../executor/programs.ts";
import { saveCheckpoint, loadCheckpoint } from "./checkpoint.ts";
import { type DistillProblem, type EvalKeys, column } from "./problem.ts";
import type { RunDir } from "./runDir.ts";
import { writeReport } from "../eval/report.ts";
import { formatEta, formatRate } from "./fit.ts";

/** Consecutive non-finite steps after which a run stops instead of skipping on. */
const MAX_SKIPS_IN_A_ROW = 20;

/** Independent random streams of a run. */
export const STREAM = { init: 1, eval: 2, curve: 3, step: 4, sampling: 5 } as const;

export type DistillOptions = {
  resume?: boolean;
  /** Called with a one-line progress report. */
  progress?: (line: string) => void;
  /** Set to true (e.g. by SIGINT) to checkpoint and stop after the current step. */
  stopRequested?: () => boolean;
  /** Called when training is over and the student saved, before the final evaluation. */
  evaluating?: () => void;
};

export type DistillResult = { metrics: Record<string, number>; steps: number; interrupted: boolean };

/** The evaluation keys of a run. */
export function evalKeys(seed: number): EvalKeys {
  const k = key(seed);
  return { curve: foldIn(k, STREAM.curve), eval: foldIn(k, STREAM.eval), sampling: foldIn(k, STREAM.sampling) };
}

/** A compiled program of arrays to arrays (consumes its inputs). */
export type Program = (inputs: Array[]) => Promise<Array[]>;

/**
 * The pair pass of a method as a pure function: TBCM's teacher pass (noise, route angles,
 * condition rows, empty-prompt rows, guidance column → xt, dxdt, endpoint), or the sCM
 * baseline's (data, noise, angles, condition rows, empty-prompt rows, guidance → xt, dxdt).
 */
export function pairPass<P extends Tree>(cfg: TbcmConfig, problem: DistillProblem<P>): PairPass {
  const schedule = guidanceSchedule(cfg);
  if (cfg.method === "tbcm") {
    const fromNoise = (noise: Array, angles: Array, c: Array, u: Array, w: Array): Array[] => {
      const traj = sampleTrajectory(problem.teacher, noise.mul(SIGMA_D), angles, c, u, w, schedule);
      const endpoint = traj.endpoint.ref;
      const [xt, dxdt] = trainingPairs(traj);
      return [xt, dxdt, endpoint];
    };
    const inputNames = ["noise", "angles", "cond", "uncond", "w"];
    if (cfg.route.legSteps === 0) return { f: fromNoise, inputNames, outputNames: ["xt", "dxdt", "endpoint"] };
    return {
      // the trajectory from noise, then the leg from its endpoint re-noised to the leg's first angle
      f: (noise: Array, angles: Array, c: Array, u: Array, w: Array, legNoise: Array, legAngles: Array) => {
        const [xt, dxdt, endpoint] = fromNoise(noise, angles, c.ref, u.ref, w.ref);
        const [first, ...later] = np.split(legAngles.ref, cfg.route.legSteps);
        later.forEach((a) => a.dispose());
        const start = noisy(endpoint.ref, legNoise.mul(SIGMA_D), first.reshape([1, 1]));
        const [legXt, legDxdt, legEndpoint] = legPairs(sampleTrajectory(problem.teacher, start, legAngles, c, u, w, schedule));
        return [np.concatenate([xt, legXt], 0), np.concatenate([dxdt, legDxdt], 0), endpoint, legEndpoint];
      },
      inputNames: [...inputNames, "leg_noise", "leg_angles"],
      outputNames: ["xt", "dxdt", "endpoint", "leg_endpoint"],
    };
  }
  return {
    f: (z: Array, n: Array, t: Array, c: Array, u: Array, w: Array) => scmPairs(problem.teacher, z, n, t, c, u, w, schedule),
    inputNames: ["z", "noise", "t", "cond", "uncond", "w"],
    outputNames: ["xt", "dxdt"],
  };
}

/**
 * The loop's two programs on the configured executor, and the initial weights in the layout
 * they take (`params` and `state` are taken over).
 */
export function distillPrograms<P extends Tree>(cfg: TbcmConfig, problem: DistillProblem<P>, optimizer: Optimizer, params: P, state: LeafState[], o: { keepOnDevice?: boolean } = {}) {
  const layout = new WeightLayout(params, state);
  const initialWeights = Weights.fromJax(layout, params, state);
  const programs = loopPrograms(executorOf(cfg), {
    pairPass: pairPass(cfg, problem),
    trainStep: makeTrainStep(problem.student, optimizer, cfg.train.gradClip, cfg.loss.endpointWeight),
    layout,
    hyperNames: Object.keys(optimizer.hyper(0, cfg.optim.lr)),
    keepOnDevice: o.keepOnDevice,
  });
  return { ...programs, initialWeights };
}

/**
 * Draws the training pairs of step key `k` with the pair pass (exported for bench/executor.bench.ts);
 * `onFilter` hears how many of the step's prompts the black filter kept.
 */
export async function drawPairs<P extends Tree>(cfg: TbcmConfig, problem: DistillProblem<P>, k: Key, route: number[], pass: Program,
  onFilter?: (kept: number, drawn: number) => void): Promise<PairBatch> {
  const d = problem.dim;
  const B = cfg.train.promptsPerStep;
  const pick = uniform(foldIn(k, 1), B);
  const prompts = globalThis.Array.from(pick, (u) => Math.floor(u * problem.promptCount));
  const scales = globalThis.Array.from(uniform(foldIn(k, 2), B), (u) => cfg.guidance[Math.floor(u * cfg.guidance.length)]);
  if (cfg.method === "tbcm") {
    const angles = drawRoute(foldIn(k, 3), route, cfg.route);
    const noise = np.array(normal(foldIn(k, 4), B * d)).reshape([B, d]);
    const M = cfg.route.legSteps;
    const legAngles = M > 0 ? legRoute(uniform(foldIn(k, 9), 1)[0], cfg.route.legRange, M) : [];
    const leg = M > 0 ? [np.array(normal(foldIn(k, 10), B * d)).reshape([B, d]), np.array(legAngles)] : [];
    const [xt, dxdt, endpoint, legEndpoint] = await pass([noise, np.array(angles), problem.conditions(prompts),
      problem.conditions(prompts.map(() => -1)), column(scales), ...leg]);
    const keepPrompt = problem.blackLatent.length
      ? blackFilter(foldIn(k, 5), toHost(endpoint), problem.blackLatent)
      : new Float32Array(B).fill(1);
    onFilter?.(keepPrompt.reduce((n, v) => n + v, 0), B);
    // rows: the trajectory's points 1..N−1, then the leg's points 0..M−1, each step-major (row = step·B + prompt)
    const rowAngles = [...angles.slice(1), ...legAngles];
    const rows = (f: (b: number) => number) => globalThis.Array.from({ length: rowAngles.length * B }, (_, r) => f(r % B));
    const x0 = np.tile(endpoint, [route.length - 1, 1]);
    return {
      xt, dxdt,
      t: column(globalThis.Array.from({ length: rowAngles.length * B }, (_, r) => rowAngles[Math.floor(r / B)])),
      cond: problem.conditions(rows((b) => prompts[b])),
      w: column(rows((b) => scales[b])),
      keep: column(rows((b) => keepPrompt[b])),
      x0: M > 0 ? np.concatenate([x0, np.tile(legEndpoint, [M, 1])], 0) : x0, // each row's own trajectory's endpoint
    };
  }
  // sCM baseline: one pair per real sample, as many pairs per step as TBCM makes.
  const n = B * (cfg.route.steps - 1);
  const rowPrompt = globalThis.Array.from({ length: n }, (_, r) => prompts[r % B]);
  const z = await problem.realLatents(foldIn(k, 6), rowPrompt);
  const t = scmTimes(foldIn(k, 7), n);
  const rowScale = rowPrompt.map((_, r) => scales[r % B]);
  const [xt, dxdt] = await pass([np.array(z).reshape([n, d]), np.array(normal(foldIn(k, 8), n * d)).reshape([n, d]), column(t),
    problem.conditions(rowPrompt), problem.conditions(rowPrompt.map(() => -1)), column(rowScale)]);
  return { xt, dxdt, t: column(t), cond: problem.conditions(rowPrompt), w: column(rowScale), keep: np.ones([n, 1]), x0: np.zeros([n, d]) };
}

/**
 * The student a run starts from (before its directory is claimed: this is where a bad init
 * file or black latent is refused).
 */
export function initialStudent<P extends Tree>(problem: DistillProblem<P>, cfg: TbcmConfig): P {
  if (problem.blackLatent.length !== 0 && problem.blackLatent.length !== problem.dim) {
    throw new ConfigError(`config key "black_latent": expected ${problem.dim} numbers (the teacher's latent size), got ${problem.blackLatent.length}`);
  }
  return problem.initialStudent(foldIn(key(cfg.seed), STREAM.init));
}

/**
 * The distillation loop: trains `problem`'s student on `run` (a claimed run directory) and
 * evaluates it. Everything that can reject the input has run before (building the problem).
 *
 * Step counting differs from the reference: steps count from 0 and a step skipped for a
 * non-finite loss still advances the step, and with it r and the learning rate (the reference's
 * global step starts at 1 and stays on a skipped step). So step i's randomness, r and lr are
 * functions of i alone, which keeps a resumed run equal to an uninterrupted one.
 */
export async function trainStudent<P extends Tree>(problem: DistillProblem<P>, cfg: TbcmConfig, initial: P, run: RunDir, opts: DistillOptions = {}): Promise<DistillResult> {
  const say = opts.progress ?? (() => {});
  const runKey = key(cfg.seed);
  let params: Tree = initial;
  const configJson = JSON.stringify(cfg);
  const optimizer = makeOptimizer(cfg.optim);

  let state: LeafState[] = optimizer.init(tree.flatten(params as Tree)[0] as Array[]);
  let start = 0;
  let savedEma: Float32Array[] | undefined;
  if (opts.resume) {
    const ckpt = loadCheckpoint(run.checkpointPath, params, state);
    // a checkpoint from before a key existed reads as that key's default (which keeps the old behaviour)
    const saved = withDefaults(JSON.parse(ckpt.config));
    // train.steps, the executor and its device may change on resume (a run continued on the other executor
    // agrees with the uninterrupted one to the executors' float32 tolerance, not bit for bit).
    const comparable = (c: TbcmConfig) => JSON.stringify({ ...c, executor: undefined, device: undefined, train: { ...c.train, steps: 0 } });
    if (comparable(saved) !== comparable(cfg)) {
      tree.dispose([ckpt.params, ckpt.state]);
      throw new Error(`the run in "${run.dir}" was made with another config (only train.steps, executor and device may change on --resume); use a new --out`);
    }
    tree.dispose([params, state]);
    ({ params, state } = ckpt);
    savedEma = ckpt.ema;
    if (cfg.train.ema > 0 && !savedEma) throw new Error(`the checkpoint in "${run.dir}" holds no parameter average (train.ema); use a new --out`);
    start = ckpt.step;
    // Drop log lines past the checkpoint, so the log reads as one uninterrupted run.
    const { torn } = run.keepLogUpTo(start);
    if (torn) say("warning: the last line of log.jsonl was cut off (the process was killed while writing it) and is dropped");
    say(`resuming from step ${start}`);
  } else {
    run.startLog();
  }
  run.writeConfigJson(configToRaw(cfg));

  for (const w of problem.warnings ?? []) say(`warning: ${w}`);
  const route = routeAngles(cfg.route.shift, cfg.route.steps);
  const programs = distillPrograms(cfg, problem, optimizer, params as P, state);
  let weights = programs.initialWeights;
  const layout = weights.layout;
  // the moving average of the parameters (train.ema), host arrays in layout order; the student when kept
  let ema: Float32Array[] | undefined;
  if (cfg.train.ema > 0) ema = savedEma ?? weights.host().slice(0, layout.paramCount).map((a) => a.slice());
  /** The parameters the run delivers (the average when kept), as jax-js arrays for the caller to dispose. */
  const studentParams = (): P => (ema ? layout.paramsFromHost(ema) : tree.ref(weights.params as never)) as P;

  let evalSeconds = 0; // time spent on the consistency curve, kept out of the training time
  const curve = async () => {
    const c0 = performance.now();
    await weights.download(); // webgpu: the weights live on the device between steps
    const p = studentParams();
    const value = await problem.curve(p);
    tree.dispose(p);
    evalSeconds += (performance.now() - c0) / 1000;
    return value;
  };
  const trainSeconds = () => (performance.now() - t0) / 1000 - evalSeconds;
  /** A student file: its parameters with the config, the step and the student kind `openRun` checks. */
  const saveStudent = (path: string, p: P, at: number) => saveParams(path, p, { config: configJson, step: String(at), kind: problem.studentKind });
  const save = async (at: number) => {
    await weights.download();
    saveCheckpoint(run.checkpointPath, { params: weights.params, state: weights.state, step: at, config: configJson, ...(ema ? { ema } : {}) });
  };

  say(`${cfg.method} on the ${cfg.teacher.kind} teacher (${cfg.executor} executor${cfg.device === "cpu" ? "" : ` on ${cfg.device}`}): ${parameterCount(weights.params as Tree).toLocaleString()} student parameters, `
    + `${cfg.method === "tbcm" ? `${cfg.train.promptsPerStep} prompts × ${cfg.route.steps - 1 + cfg.route.legSteps} pairs${cfg.route.legSteps > 0 ? ` (${cfg.route.legSteps} on a re-noised leg)` : ""}` : `${cfg.train.promptsPerStep * (cfg.route.steps - 1)} real samples`} per step`);
  if (start === 0) run.appendLog({ step: 0, consistency_rel_mse_1step: await curve() });
  const decoderLoadsBefore = problem.decoderLoads();
  evalSeconds = 0; // the step-0 curve ran before the clock started
  const t0 = performance.now();
  let interrupted = false;
  let skipped = 0;
  let skippedInARow = 0;
  const filtered = { kept: 0, drawn: 0 };
  let s = start;
  for (; s < cfg.train.steps; s++) {
    const k = foldIn(foldIn(runKey, STREAM.step), s);
    const batch = await drawPairs(cfg, problem, k, route, programs.pairs, (kept, drawn) => { filtered.kept += kept; filtered.drawn += drawn; });
    const r = tangentRatio(s, cfg.method === "tbcm" ? cfg.loss : { ...cfg.loss, calmStart: Infinity });
    const lr = learningRate(s, cfg.train.steps, cfg.optim.lr, lrSchedule(cfg.optim));
    const out = await programs.step(weights, batch, r, optimizer.hyper(s, lr));
    weights = out.weights;
    const values = out.stats;
    const stats = Object.fromEntries(STEP_STATS.map((name, i) => [name, values[i]])) as Record<(typeof STEP_STATS)[number], number>;
    if (stats.applied === 0) {
      skipped++;
      skippedInARow++;
      run.appendLog({ step: s + 1, event: "skipped_nonfinite", loss: String(stats.loss), grad_norm: String(stats.grad_norm) });
      if (skippedInARow >= MAX_SKIPS_IN_A_ROW) {
        await save(s + 1); // parameters are those of the last finite step
        weights.dispose(); // (device tensors before the sessions that made them)
        await programs.dispose();
        throw new Error(`the loss or gradient was not finite for ${skippedInARow} steps in a row (up to step ${s + 1}); `
          + `check guidance, optim.lr and train.grad_clip (${run.checkpointPath} holds the last finite state)`);
      }
    } else skippedInARow = 0;
    if (ema) await weights.download();
    if (ema) updateEma(ema, weights.host().slice(0, layout.paramCount), cfg.train.ema, s);
    const done = s + 1;
    if (done % cfg.train.logEvery === 0 || done === cfg.train.steps) {
      const elapsed = trainSeconds();
      const rate = elapsed > 0 ? (done - start) / elapsed : 0;
      // the share of prompts the black filter kept since the last line (TBCM with a black latent)
      const keep = filtered.drawn > 0 && problem.blackLatent.length > 0 ? { black_filter_keep: filtered.kept / filtered.drawn } : {};
      filtered.kept = filtered.drawn = 0;
      // the baseline's pairs lie on no trajectory: no endpoint error to log
      const logged = cfg.method === "tbcm" ? stats : Object.fromEntries(Object.entries(stats).filter(([name]) => name !== "endpoint_mse"));
      run.appendLog({ step: done, ...logged, r, lr, ...keep, time_s: Number(elapsed.toFixed(2)) });
      say(`step ${done}/${cfg.train.steps}  loss ${stats.loss.toFixed(4)}  r ${r.toFixed(2)}  ${formatRate(rate)}  ETA ${rate > 0 ? formatEta((cfg.train.steps - done) / rate) : "…"}`);
    }
    if (done % cfg.train.evalEvery === 0 || done === cfg.train.steps) {
      run.appendLog({ step: done, consistency_rel_mse_1step: await curve(), time_s: Number(trainSeconds().toFixed(2)) });
    }
    if (done % cfg.train.checkpointEvery === 0) await save(done);
    if (cfg.train.snapshotEvery > 0 && done % cfg.train.snapshotEvery === 0) {
      await weights.download();
      const p = studentParams();
      saveStudent(run.snapshotPath(done), p, done);
      tree.dispose(p);
    }
    if (opts.stopRequested?.()) {
      interrupted = true;
      s++;
      break;
    }
  }
  await save(s);
  // TBCM is image-free: nothing in its training loop may load the VAE (the baseline may, to encode images).
  if (cfg.method === "tbcm" && problem.decoderLoads() !== decoderLoadsBefore) throw new Error("internal error: the VAE was loaded during TBCM training");
  if (interrupted) {
    say(`stopped at step ${s}; checkpoint written — continue with --resume`);
    weights.dispose();
    await programs.dispose();
    return { metrics: {}, steps: s, interrupted };
  }
  const trainTime = trainSeconds(); // the final evaluation is not training
  const student = studentParams();
  weights.dispose();
  await programs.dispose();
  saveStudent(run.studentPath, student, s);
  opts.evaluating?.();
  say("evaluating…");
  const metrics = await problem.evaluate(student, run.dir, foldIn(runKey, STREAM.eval), say);
  tree.dispose(student);
  const full = {
    ...metrics, method: cfg.method, steps: s, skipped_steps: skipped, train_time_s: Number(trainTime.toFixed(1)),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  run.writeMetrics(full);
  writeReport(run.dir, reportTitle(cfg), full, cfg);
  return { metrics, steps: s, interrupted };
}

/** A config stored with a checkpoint, resolved again (keys added since take their defaults); as stored if it no longer parses. */
function withDefaults(saved: TbcmConfig): TbcmConfig {
  try {
    return parseConfig(configToRaw(saved));
  } catch {
    return saved;
  }
}

/** The heading of a run's report.md. */
export function reportTitle(cfg: TbcmConfig): string {
  return `${cfg.method === "tbcm" ? "TBCM" : "sCM baseline"} distillation on the ${cfg.teacher.kind} teacher`;
}
