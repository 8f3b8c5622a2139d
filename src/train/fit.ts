/**
 * Supervised training of the default stack's models (VAE, teacher + text encoder, evaluator):
 * one compiled step — value-and-grad of a loss → global-norm clip → AdamW — run by ONNX Runtime
 * (or jax-js), with the update skipped on a non-finite loss or gradient, an EMA of the
 * parameters kept on the host, atomic checkpoints every K steps, exact `--resume` (the batch of
 * step i depends only on i), a JSONL log and a progress line with ETA.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { numpy as np, jit, valueAndGrad, tree, type Array } from "@jax-js/jax";
import { type Tree, parameterCount } from "../numerics/tree.ts";
import { writeFileAtomic } from "../numerics/safetensors.ts";
import { adamw, guardedUpdate, type LeafState } from "./optim.ts";
import { learningRate, type LrSchedule } from "./schedule.ts";
import { WeightLayout, Weights } from "../executor/programs.ts";
import { OnnxFunction, type HostTensor } from "../executor/onnxRun.ts";
import { saveCheckpoint, loadCheckpoint } from "./checkpoint.ts";
import { updateEma } from "./ema.ts";
import { type Executor, executorParts } from "../config/schema.ts";

export type FitSpec<P extends Tree> = {
  readonly name: string;
  /** Loss of a batch (arrays in `batchNames` order) and named scalar diagnostics. */
  readonly loss: (params: P, batch: Array[]) => [Array, Array[]];
  readonly statNames: readonly string[];
  readonly batchNames: readonly string[];
  /** The batch of step i, a pure function of i (so that a resumed run repeats the same batches). */
  readonly batch: (step: number) => HostTensor[];
  readonly steps: number;
  readonly lr: number;
  readonly schedule: LrSchedule;
  readonly weightDecay: number;
  readonly gradClip: number;
  /** EMA decay of the parameters (0: none; the returned parameters are then the last ones). */
  readonly emaDecay: number;
  /** The runtime and its device (a kind alone: on the CPU). */
  readonly executor: Executor;
  readonly logEvery: number;
  readonly checkpointEvery: number;
  /** Files of the run: checkpoint (params + optimiser state + EMA + step) and log. */
  readonly files: { checkpoint: string; log: string };
  /** Stored with the checkpoint; a resume with another config is refused. */
  readonly config: string;
  readonly resume?: boolean;
  readonly say?: (line: string) => void;
  readonly stopRequested?: () => boolean;
};

export type FitResult<P extends Tree> = {
  /** EMA parameters (or the last parameters when emaDecay is 0), as jax-js arrays. */
  params: P;
  last: Record<string, number>;
  seconds: number;
  interrupted: boolean;
};

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Steps per second as a progress line shows it: "1.5 it/s", or seconds per step for a slow run ("34 s/it", not "0.0 it/s"). */
export function formatRate(stepsPerSecond: number, digits = 1): string {
  if (!(stepsPerSecond > 0)) return "… it/s";
  return stepsPerSecond >= 0.5 ? `${stepsPerSecond.toFixed(digits)} it/s` : `${(1 / stepsPerSecond).toFixed(1 / stepsPerSecond >= 10 ? 0 : 1)} s/it`;
}

export async function fit<P extends Tree>(spec: FitSpec<P>, init: P): Promise<FitResult<P>> {
  const say = spec.say ?? (() => {});
  const opt = adamw({ kind: "adamw", lr: spec.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: spec.weightDecay });
  let params = init;
  let state: LeafState[] = opt.init(tree.flatten(params as Tree)[0] as Array[]);
  let start = 0;
  let ema: Float32Array[] | undefined;
  if (spec.resume) {
    const ck = loadCheckpoint(spec.files.checkpoint, params, state);
    if (ck.config !== spec.config) {
      tree.dispose([ck.params, ck.state as unknown as Tree]);
      throw new Error(`the checkpoint "${spec.files.checkpoint}" was made with another config; use a new --out or the same config`);
    }
    tree.dispose([params, state as unknown as Tree]);
    ({ params, state } = ck);
    start = ck.step;
    ema = ck.ema;
    if (spec.emaDecay > 0 && !ema) throw new Error(`the checkpoint "${spec.files.checkpoint}" holds no parameter average; use a new --out`);
    if (existsSync(spec.files.log)) {
      const kept = readFileSync(spec.files.log, "utf8").split("\n").filter((l) => l && JSON.parse(l).step <= start);
      writeFileAtomic(spec.files.log, kept.map((l) => l + "\n").join(""));
    }
    say(`${spec.name}: resuming from step ${start}`);
  } else {
    if (existsSync(spec.files.checkpoint)) throw new Error(`"${spec.files.checkpoint}" exists: pass --resume to continue that run, or choose a new --out`);
    writeFileSync(spec.files.log, "");
  }
  const layout = new WeightLayout(params, state);
  let weights = Weights.fromJax(layout, params, state);
  const nW = layout.names.length;
  const hyperNames = Object.keys(opt.hyper(0, spec.lr));
  const flatStep = (...xs: Array[]): Array[] => {
    const { params: p, state: s } = layout.unflatten(xs.slice(0, nW));
    const batch = xs.slice(nW, nW + spec.batchNames.length);
    const hyper = Object.fromEntries(hyperNames.map((n, i) => [n, xs[nW + spec.batchNames.length + i]]));
    const [[loss, aux], grads] = valueAndGrad((pp: P) => spec.loss(pp, batch.map((b) => b.ref)), { hasAux: true })(tree.ref(p) as never) as [[Array, Array[]], P];
    batch.forEach((b) => b.dispose());
    const [leaves, def] = tree.flatten(p as Tree);
    const next = guardedUpdate(opt, tree.flatten(grads as Tree)[0] as Array[], s, leaves as Array[], loss.ref, hyper, spec.gradClip);
    const np2 = tree.unflatten(def, next.params) as P;
    const ns = next.state;
    const norm = next.gradNorm, ok = next.ok;
    return [...layout.flatten(np2, ns), np.stack([loss, ...aux, norm, ok.astype(np.float32)])];
  };
  const statNames = ["loss", ...spec.statNames, "grad_norm", "applied"];
  const { kind: executor, device } = executorParts(spec.executor);
  const onnx = executor === "onnx" ? new OnnxFunction(flatStep as never, { name: spec.name, device }) : undefined;
  const jitted = executor === "jax" ? jit(flatStep) : undefined;
  const runStep = async (w: Weights<P>, batch: HostTensor[], hyper: Record<string, number>): Promise<[Weights<P>, Float32Array]> => {
    if (onnx) {
      const inputs: HostTensor[] = [
        ...w.host().map((data, i) => ({ data, shape: layout.shapes[i] })), ...batch,
        ...hyperNames.map((n) => ({ data: Float32Array.of(hyper[n]), shape: [] })),
      ];
      const out = await onnx.run(inputs);
      w.dispose();
      return [Weights.fromHost(layout, out.slice(0, nW).map((o) => o.data)), out[nW].data];
    }
    const { params: p, state: s } = w.takeJax();
    const out = jitted!(...layout.flatten(p, s), ...batch.map((b) => np.array(b.data).reshape([...b.shape])), ...hyperNames.map((n) => np.array(hyper[n])));
    const stats = (await out[nW].data()) as Float32Array;
    const { params: p2, state: s2 } = layout.unflatten(out.slice(0, nW));
    return [Weights.fromJax(layout, p2, s2), stats];
  };
  const nParams = layout.paramCount;
  const hostParams = () => weights.host().slice(0, nParams);
  if (spec.emaDecay > 0 && !ema) ema = hostParams().map((a) => a.slice());
  const save = (at: number) => {
    saveCheckpoint(spec.files.checkpoint, { params: weights.params, state: weights.state, step: at, config: spec.config, ...(ema ? { ema } : {}) });
  };
  say(`${spec.name}: ${parameterCount(weights.params).toLocaleString()} parameters, ${spec.steps} steps (${executor} executor${device === "cpu" ? "" : ` on ${device}`})`);
  const t0 = performance.now();
  let last: Record<string, number> = {};
  let inARow = 0;
  let s = start;
  let interrupted = false;
  for (; s < spec.steps; s++) {
    const lr = learningRate(s, spec.steps, spec.lr, spec.schedule);
    const [w, stats] = await runStep(weights, spec.batch(s), opt.hyper(s, lr));
    weights = w;
    last = Object.fromEntries(statNames.map((n, i) => [n, stats[i]]));
    if (last.applied === 0) {
      inARow++;
      appendFileSync(spec.files.log, JSON.stringify({ step: s + 1, event: "skipped_nonfinite", loss: String(last.loss) }) + "\n");
      if (inARow >= 20) {
        save(s + 1);
        throw new Error(`${spec.name}: the loss or gradient was not finite for 20 steps in a row (step ${s + 1}); lower the learning rate (${spec.files.checkpoint} holds the last finite state)`);
      }
    } else inARow = 0;
    if (ema) updateEma(ema, hostParams(), spec.emaDecay, s);
    const done = s + 1;
    if (done % spec.logEvery === 0 || done === spec.steps) {
      const elapsed = (performance.now() - t0) / 1000;
      appendFileSync(spec.files.log, JSON.stringify({ step: done, ...last, lr, time_s: Number(elapsed.toFixed(2)) }) + "\n");
      const rate = (done - start) / elapsed;
      say(`${spec.name} step ${done}/${spec.steps}  ${statNames.slice(0, -1).map((n) => `${n} ${last[n].toPrecision(4)}`).join("  ")}  ${formatRate(rate, 2)}  ETA ${formatEta((spec.steps - done) / rate)}`);
    }
    if (done % spec.checkpointEvery === 0) save(done);
    if (spec.stopRequested?.()) { interrupted = true; s++; break; }
  }
  save(s);
  await onnx?.dispose();
  jitted?.dispose();
  const seconds = (performance.now() - t0) / 1000;
  let out: P;
  if (ema) {
    weights.dispose();
    out = layout.paramsFromHost(ema);
  } else {
    const { params: p, state: st } = weights.takeJax();
    tree.dispose(st as unknown as Tree);
    out = p;
  }
  return { params: out, last, seconds, interrupted };
}
