/**
 * The executors of the distillation loop (issue #5): the loop's two compiled programs — the pair
 * pass (the teacher's trajectory for TBCM, the teacher's velocity at noised data for sCM) and the
 * whole training step — run either by jax-js (`jit`) or by ONNX Runtime (the same functions traced
 * with `makeJaxpr` and lowered by `lower.ts`, spec fast-paths §1). The loop itself is one; it only
 * picks the programs.
 *
 * Between steps the parameters and optimiser state live in a `Weights`: jax-js arrays for the jax
 * executor, host `Float32Array`s for ONNX Runtime (turned into jax-js arrays only when the loop
 * evaluates or checkpoints). Trees are flattened to one ordered list with stable names, the
 * tensor names of a checkpoint: `params.<dotted path>`, `opt.<leaf>.<slot>`; then the batch
 * (`batch.xt`, `batch.t`, `batch.dxdt`, `batch.cond`, `batch.w`, `batch.keep`, `batch.x0`), `r`, and
 * `hyper.<name>` in the optimiser's order. The step's outputs are `next.<input name>` for every
 * parameter and state leaf, then `stats` (`STEP_STATS`).
 */
import { numpy as np, jit, tree, type Array, type JsTreeDef, type OwnedFunction } from "@jax-js/jax";
import { type Tree, namedLeaves, toHost, takeHost } from "../numerics/tree.ts";
import type { LeafState, Hyper } from "../train/optim.ts";
import type { PairBatch, TrainStep } from "../train/step.ts";
import { type Executor, type ExecutorKind, type Device, executorParts } from "../config/schema.ts";
import { OnnxFunction, type HostTensor, type OnnxRunOptions, type DeviceTensor, isDeviceTensor } from "./onnxRun.ts";

export { EXECUTORS, type ExecutorKind } from "../config/schema.ts";

/** The batch entries, in the order the step program takes them. */
export const BATCH_KEYS = ["xt", "t", "dxdt", "cond", "w", "keep", "x0"] as const;

/**
 * Where each parameter and optimiser-state leaf sits in the flat, named list the ONNX programs
 * take and give. Built from the initial trees; state leaves are found by slot name, so the key
 * order of a state record (which an optimiser update may change) does not matter.
 */
export class WeightLayout<P extends Tree> {
  /** `params.<path>` then `opt.<leaf>.<slot>`, as in a checkpoint. */
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  readonly paramCount: number;
  readonly #paramDef: JsTreeDef;
  readonly #slots: readonly (readonly string[])[];

  constructor(params: P, state: readonly LeafState[]) {
    const named = namedLeaves(params);
    this.#paramDef = tree.structure(params as never);
    this.#slots = state.map((s) => Object.keys(s));
    this.paramCount = named.length;
    this.names = [
      ...named.map(([n]) => `params.${n}`),
      ...this.#slots.flatMap((slots, i) => slots.map((k) => `opt.${i}.${k}`)),
    ];
    this.shapes = [
      ...named.map(([, a]) => [...a.shape]),
      ...this.#slots.flatMap((slots, i) => slots.map((k) => [...state[i][k].shape])),
    ];
  }

  /** The leaves of `params` and `state` in layout order (the same arrays, not new references). */
  flatten(params: P, state: readonly LeafState[]): Array[] {
    const leaves = tree.leaves(params as never) as Array[];
    if (leaves.length !== this.paramCount || state.length !== this.#slots.length) {
      throw new Error(`weights do not match their layout (${leaves.length} parameters, ${state.length} state leaves)`);
    }
    return [...leaves, ...this.#slots.flatMap((slots, i) => slots.map((k) => {
      const a = state[i][k];
      if (a === undefined) throw new Error(`optimiser state of leaf ${i} has no slot "${k}"`);
      return a;
    }))];
  }

  /** A parameter tree from host values of the parameter leaves (the first `paramCount` of the layout). */
  paramsFromHost(values: readonly Float32Array[]): P {
    if (values.length !== this.paramCount) throw new Error(`expected ${this.paramCount} parameter arrays, got ${values.length}`);
    return tree.unflatten(this.#paramDef, values.map((v, i) => np.array(v).reshape([...this.shapes[i]]))) as P;
  }

  /** Trees from arrays in layout order (taking them over). */
  unflatten(xs: readonly Array[]): { params: P; state: LeafState[] } {
    if (xs.length !== this.names.length) throw new Error(`expected ${this.names.length} weight arrays, got ${xs.length}`);
    const params = tree.unflatten(this.#paramDef, xs.slice(0, this.paramCount)) as P;
    let i = this.paramCount;
    const state = this.#slots.map((slots) => Object.fromEntries(slots.map((k) => [k, xs[i++]])) as LeafState);
    return { params, state };
  }
}

/** Copies device tensors (in layout order, not consumed) to host arrays. */
export type Download = (tensors: readonly DeviceTensor[]) => Promise<Float32Array[]>;

/**
 * Parameters and optimiser state between steps, held as jax-js trees, as host arrays in layout
 * order, or both (each made from the other on first use). Owns what it holds. On webgpu they
 * may also be device tensors (the training step's outputs, kept on the device for the next
 * step): `download()` then makes the host copies, which everything but the step reads.
 */
export class Weights<P extends Tree> {
  #params: P | undefined;
  #state: LeafState[] | undefined;
  #host: Float32Array[] | undefined;
  #device: DeviceTensor[] | undefined;
  readonly #download: Download | undefined;

  private constructor(readonly layout: WeightLayout<P>, params?: P, state?: LeafState[], host?: Float32Array[], device?: DeviceTensor[], download?: Download) {
    this.#params = params;
    this.#state = state;
    this.#host = host;
    this.#device = device;
    this.#download = download;
  }

  /** Device tensors in layout order (taken over); `download` copies them to the host when asked. */
  static fromDevice<P extends Tree>(layout: WeightLayout<P>, tensors: DeviceTensor[], download: Download): Weights<P> {
    if (tensors.length !== layout.names.length) throw new Error(`expected ${layout.names.length} weight tensors, got ${tensors.length}`);
    return new Weights(layout, undefined, undefined, undefined, tensors, download);
  }

  /** The device tensors, when the weights are on the device (owned by this object). */
  get device(): readonly DeviceTensor[] | undefined {
    return this.#device;
  }

  /** Makes the host copies of weights held only on the device (nothing to do otherwise). */
  async download(): Promise<void> {
    if (this.#host !== undefined || this.#params !== undefined || this.#device === undefined) return;
    this.#host = await this.#download!(this.#device);
  }

  /** Takes ownership of `params` and `state`. */
  static fromJax<P extends Tree>(layout: WeightLayout<P>, params: P, state: LeafState[]): Weights<P> {
    layout.flatten(params, state); // checks the shape of the trees
    return new Weights(layout, params, state);
  }

  /** Host values in layout order (kept, not copied). */
  static fromHost<P extends Tree>(layout: WeightLayout<P>, values: Float32Array[]): Weights<P> {
    if (values.length !== layout.names.length) throw new Error(`expected ${layout.names.length} weight arrays, got ${values.length}`);
    values.forEach((v, i) => {
      const n = layout.shapes[i].reduce((a, b) => a * b, 1);
      if (v.length !== n) throw new Error(`weight ${layout.names[i]}: ${v.length} values for shape [${layout.shapes[i]}]`);
    });
    return new Weights(layout, undefined, undefined, values);
  }

  #jax(): { params: P; state: LeafState[] } {
    if (this.#params === undefined || this.#state === undefined) {
      if (this.#host === undefined) throw new Error(this.#device ? "weights on the device: await download() first" : "weights used after being disposed or taken");
      const arrays = this.#host.map((v, i) => np.array(v).reshape([...this.layout.shapes[i]]));
      ({ params: this.#params, state: this.#state } = this.layout.unflatten(arrays));
    }
    return { params: this.#params!, state: this.#state! };
  }

  /** The parameters as jax-js arrays, owned by this object (borrow them with `.ref`). */
  get params(): P {
    return this.#jax().params;
  }

  /** The optimiser state as jax-js arrays, owned by this object. */
  get state(): LeafState[] {
    return this.#jax().state;
  }

  /** Host copies in layout order (owned by this object; do not modify). */
  host(): Float32Array[] {
    if (this.#host === undefined) {
      if (this.#params === undefined || this.#state === undefined) throw new Error(this.#device ? "weights on the device: await download() first" : "weights used after being disposed or taken");
      this.#host = this.layout.flatten(this.#params, this.#state).map(toHost);
    }
    return this.#host;
  }

  /** Hands the jax-js trees over to the caller; this object is empty afterwards. */
  takeJax(): { params: P; state: LeafState[] } {
    const out = this.#jax();
    this.#params = this.#state = this.#host = undefined;
    this.#releaseDevice();
    return out;
  }

  #releaseDevice(): void {
    for (const t of this.#device ?? []) t.dispose();
    this.#device = undefined;
  }

  dispose(): void {
    if (this.#params !== undefined) tree.dispose([this.#params as Tree, this.#state as unknown as Tree]);
    this.#params = this.#state = this.#host = undefined;
    this.#releaseDevice();
  }
}

/** A jax-js function of arrays returning a list of arrays, with names for its inputs and outputs. */
export type PairPass = {
  readonly f: (...inputs: Array[]) => Array[];
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
};

/** What a step gives back: the next weights and the `STEP_STATS` values. */
export type StepOutput<P extends Tree> = { weights: Weights<P>; stats: Float32Array };

/** The loop's two compiled programs. */
export type LoopPrograms<P extends Tree> = {
  readonly executor: ExecutorKind;
  readonly device: Device;
  /** The pair pass; consumes its inputs, returns jax-js arrays. */
  pairs(inputs: Array[]): Promise<Array[]>;
  /** One training step; consumes `weights` and `batch`. */
  step(weights: Weights<P>, batch: PairBatch, r: number, hyper: Hyper): Promise<StepOutput<P>>;
  /** Sessions created so far (ONNX: one per program and input-shape signature; jax: 0). */
  readonly sessions: number;
  dispose(): Promise<void>;
};

export type ProgramSpec<P extends Tree> = {
  pairPass: PairPass;
  trainStep: TrainStep<P>;
  layout: WeightLayout<P>;
  /** Names of the optimiser's step scalars (`Optimizer.hyper`), in the order they are fed. */
  hyperNames: readonly string[];
  /** ONNX Runtime session options (threads: TBCM_THREADS, else every core). */
  onnx?: OnnxRunOptions;
  /**
   * On webgpu, keep the weights on the device between steps (default true): only the step's
   * statistics come back each step, the weights when `Weights.download()` asks (bench: false
   * measures the copies).
   */
  keepOnDevice?: boolean;
};

/** The two programs of the loop, run by `executor`. */
export function loopPrograms<P extends Tree>(executor: Executor, spec: ProgramSpec<P>): LoopPrograms<P> {
  const { kind, device } = executorParts(executor);
  return kind === "jax" ? jaxPrograms(spec) : onnxPrograms({ ...spec, onnx: { ...spec.onnx, device } });
}

function jaxPrograms<P extends Tree>({ pairPass, trainStep, layout }: ProgramSpec<P>): LoopPrograms<P> {
  const pairs = jit(pairPass.f);
  const step = jit(trainStep as never) as unknown as OwnedFunction<TrainStep<P>>;
  return {
    executor: "jax",
    device: "cpu",
    pairs: async (inputs) => pairs(...inputs),
    async step(weights, batch, r, hyper) {
      const { params, state } = weights.takeJax();
      const h = Object.fromEntries(Object.entries(hyper).map(([n, v]) => [n, np.array(v)]));
      const [p, s, stats] = step(params, state, batch, np.array(r), h);
      return { weights: Weights.fromJax(layout, p, s), stats: (await stats.data()) as Float32Array };
    },
    sessions: 0,
    async dispose() {
      pairs.dispose();
      step.dispose();
    },
  };
}

const hostOf = (a: Array): HostTensor => {
  const shape = [...a.shape];
  return { data: takeHost(a), shape };
};
const scalar = (v: number): HostTensor => ({ data: Float32Array.of(v), shape: [] });

function onnxPrograms<P extends Tree>({ pairPass, trainStep, layout, hyperNames, onnx = {}, keepOnDevice = true }: ProgramSpec<P>): LoopPrograms<P> {
  const pairs = new OnnxFunction(pairPass.f as never, { ...onnx, name: "pair_pass", inputNames: pairPass.inputNames, outputNames: pairPass.outputNames });
  const nWeights = layout.names.length;
  const flatStep = (...xs: Array[]): Array[] => {
    const { params, state } = layout.unflatten(xs.slice(0, nWeights));
    let i = nWeights;
    const batch = Object.fromEntries(BATCH_KEYS.map((k) => [k, xs[i++]])) as PairBatch;
    const r = xs[i++];
    const hyper = Object.fromEntries(hyperNames.map((n) => [n, xs[i++]]));
    const [p, s, stats] = trainStep(params, state, batch, r, hyper);
    return [...layout.flatten(p, s), stats];
  };
  // webgpu: the next weights stay on the device; a second program (the identity of the weights,
  // on the same device) copies them to the host when the loop reads them (onnxruntime-node's
  // Tensor.getData() of a gpu-buffer tensor aborts the process in 1.30).
  const onDevice = onnx.device === "webgpu" && keepOnDevice;
  const step = new OnnxFunction(flatStep as never, {
    ...onnx,
    name: "train_step",
    inputNames: [...layout.names, ...BATCH_KEYS.map((k) => `batch.${k}`), "r", ...hyperNames.map((n) => `hyper.${n}`)],
    outputNames: [...layout.names.map((n) => `next.${n}`), "stats"],
    ...(onDevice ? { deviceOutputs: layout.names.map((n) => `next.${n}`) } : {}),
  });
  const copy = onDevice
    ? new OnnxFunction(((...xs: Array[]) => xs) as never, { ...onnx, name: "download", inputNames: layout.names, outputNames: layout.names.map((n) => `host.${n}`) })
    : undefined;
  const download: Download = async (tensors) => (await copy!.runMixed(tensors) as HostTensor[]).map((o) => o.data);
  return {
    executor: "onnx",
    device: onnx.device ?? "cpu",
    async pairs(inputs) {
      const out = await pairs.run(inputs.map(hostOf));
      return out.map((o) => np.array(o.data).reshape([...o.shape]));
    },
    async step(weights, batch, r, hyper) {
      const names = Object.keys(hyper);
      if (names.length !== hyperNames.length || names.some((n, i) => n !== hyperNames[i])) {
        throw new Error(`optimiser scalars [${names}] differ from the compiled step's [${hyperNames}]`);
      }
      const rest = [...BATCH_KEYS.map((k) => hostOf(batch[k])), scalar(r), ...hyperNames.map((n) => scalar(hyper[n]))];
      if (onDevice) {
        const feeds = [...(weights.device ?? weights.host().map((data, i) => ({ data, shape: layout.shapes[i] }))), ...rest];
        const out = await step.runMixed(feeds);
        weights.dispose();
        const next = out.slice(0, nWeights);
        const stats = out[nWeights];
        if (!next.every(isDeviceTensor) || isDeviceTensor(stats)) throw new Error("internal error: the step's weights did not stay on the device");
        return { weights: Weights.fromDevice(layout, next, download), stats: stats.data };
      }
      const values = weights.host();
      const inputs: HostTensor[] = [
        ...values.map((data, i) => ({ data, shape: layout.shapes[i] })),
        ...rest,
      ];
      const out = await step.run(inputs);
      weights.dispose();
      return { weights: Weights.fromHost(layout, out.slice(0, nWeights).map((o) => o.data)), stats: out[nWeights].data };
    },
    get sessions() {
      return pairs.cacheSize + step.cacheSize + (copy?.cacheSize ?? 0);
    },
    async dispose() {
      await pairs.dispose();
      await step.dispose();
      await copy?.dispose();
    },
  };
}
