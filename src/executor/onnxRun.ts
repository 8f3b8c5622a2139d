/**
 * Runs lowered jax-js programs with ONNX Runtime (onnxruntime-node, CPU) — spec fast-paths §1.
 *
 * `OnnxFunction` wraps a jax-js function of flat arrays; each call with a new signature of input
 * shapes traces it (`makeJaxpr`), lowers it (`lower.ts`) and creates one InferenceSession, cached
 * under that signature (ONNX graphs here are shape-specialised). Inputs and outputs are host
 * `Float32Array`s with a shape. Randomness stays outside: draw noise on the host, feed it as input.
 */
import * as ort from "onnxruntime-node";
import { onnxThreadCount } from "../numerics/threadCount.ts";
import { floatToHalf, halfToFloat } from "../numerics/float16.ts";
import { type LoweredProgram, type TensorSpec, type LowerOptions, lowerFunction, avalSpec } from "./lower.ts";
import type { Device } from "../config/schema.ts";

export type HostTensor = { readonly data: Float32Array; readonly shape: readonly number[] };
/** The element types a file's input may declare other than float32, fed from float32 values. */
export type FeedType = "float32" | "float16" | "int64" | "int32" | "bool";
export type TypedHostTensor = HostTensor & { readonly type?: FeedType };

function typedTensor(x: TypedHostTensor): ort.Tensor {
  const shape = [...x.shape];
  switch (x.type ?? "float32") {
    case "float16": return new ort.Tensor("float16", Uint16Array.from(x.data, floatToHalf), shape);
    case "int64": return new ort.Tensor("int64", BigInt64Array.from(x.data, (v) => BigInt(Math.round(v))), shape);
    case "int32": return new ort.Tensor("int32", Int32Array.from(x.data, Math.round), shape);
    case "bool": return new ort.Tensor("bool", Uint8Array.from(x.data, (v) => (v ? 1 : 0)), shape);
    default: return new ort.Tensor("float32", x.data, shape);
  }
}

export type OnnxRunOptions = {
  /** Intra-op threads; default TBCM_THREADS, else every core. */
  readonly threads?: number;
  /** ONNX Runtime graph optimisation level; default "all". */
  readonly optimization?: "disabled" | "basic" | "extended" | "all";
  /** ONNX Runtime's execution provider; default "cpu" (README "GPU"). */
  readonly device?: Device;
  /**
   * Outputs that stay on the device (webgpu: ONNX Runtime's "gpu-buffer" location): `run` gives
   * them as device tensors (`ort.Tensor`), which feed a later run without a copy. Ignored on the
   * CPU (and on cuda, whose buffers onnxruntime-node does not hand out).
   */
  readonly deviceOutputs?: readonly string[];
};

/** A tensor that stays on the device between runs (owned by whoever holds it: `dispose()` it). */
export type DeviceTensor = ort.Tensor;
export const isDeviceTensor = (x: HostTensor | DeviceTensor): x is DeviceTensor => x instanceof ort.Tensor;

/** Thrown when a device's provider or adapter is missing: one line saying what to install. */
export class DeviceError extends Error {}

/** Session logging: TBCM_ORT_VERBOSE=1 logs every node's provider (ORT's verbose level) to stderr. */
function logSeverity(): 0 | 3 {
  return process.env.TBCM_ORT_VERBOSE === "1" ? 0 : 3;
}

/** The user-facing reason a session on `device` could not be created, or undefined for other errors. */
function deviceFailure(device: Device, e: unknown): string | undefined {
  const m = String((e as Error)?.message ?? e);
  if (device === "webgpu" && /WebGPU adapter|No supported adapters/i.test(m)) {
    return "device webgpu: ONNX Runtime found no WebGPU adapter; it needs a Vulkan driver (Linux: a GPU's Vulkan driver, "
      + "or software Vulkan without root: eval \"$(scripts/lavapipe.sh .lavapipe)\", as the CI does)";
  }
  if (device === "cuda" && /cuda|providers_shared|shared library/i.test(m)) {
    return "device cuda: ONNX Runtime's CUDA provider is not installed; reinstall onnxruntime-node with "
      + "ONNXRUNTIME_NODE_INSTALL=cuda12 (its install script downloads it; needs CUDA 12 and cuDNN 9)";
  }
  return undefined;
}

/** Session options on `device` (the CPU's exactly as before the device option existed). */
export function sessionOptions(options: OnnxRunOptions = {}): ort.InferenceSession.SessionOptions {
  const device = options.device ?? "cpu";
  return {
    intraOpNumThreads: options.threads ?? onnxThreadCount(),
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: options.optimization ?? "all",
    // ORT's memory pattern pre-plans one block per session and input shapes, and its arena keeps
    // every block it ever grew; with a handful of programs alive (pair pass, training step,
    // curve, evaluation) both held hundreds of MB. Plain allocation measured no slower here
    // (bench/RESULTS.md §12).
    enableMemPattern: false,
    enableCpuMemArena: false,
    logSeverityLevel: logSeverity(),
    // the CPU options exactly as before (no executionProviders key): CPU numbers stay bit-identical
    ...(device === "cpu" ? {} : { executionProviders: [device] }),
    ...(device === "webgpu" && options.deviceOutputs?.length
      ? { preferredOutputLocation: Object.fromEntries(options.deviceOutputs.map((n) => [n, "gpu-buffer" as const])) }
      : {}),
  };
}

/** One InferenceSession over one lowered program. */
export class OnnxProgram {
  private constructor(readonly program: LoweredProgram, private readonly session: ort.InferenceSession) {}

  static async create(program: LoweredProgram, options: OnnxRunOptions = {}): Promise<OnnxProgram> {
    const device = options.device ?? "cpu";
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(program.model, sessionOptions(options));
    } catch (e) {
      const reason = deviceFailure(device, e);
      throw reason === undefined ? e : new DeviceError(reason);
    }
    return new OnnxProgram(program, session);
  }

  async run(inputs: readonly HostTensor[]): Promise<HostTensor[]> {
    const out = await this.runMixed(inputs);
    if (out.some(isDeviceTensor)) throw new Error("this program keeps outputs on the device: use runMixed");
    return out as HostTensor[];
  }

  /**
   * Like `run`, with device tensors among the inputs (fed as they are) and outputs: those the
   * session keeps on the device (`deviceOutputs`) come back as device tensors, the rest as host arrays.
   */
  async runMixed(inputs: readonly (HostTensor | DeviceTensor)[]): Promise<(HostTensor | DeviceTensor)[]> {
    const specs = this.program.inputs;
    if (inputs.length !== specs.length) {
      throw new Error(`ONNX program takes ${specs.length} inputs, got ${inputs.length}`);
    }
    const feeds: Record<string, ort.Tensor> = {};
    inputs.forEach((x, i) => {
      const spec = specs[i];
      if (isDeviceTensor(x)) {
        if (x.dims.length !== spec.shape.length || x.dims.some((d, j) => d !== spec.shape[j])) {
          throw new Error(`ONNX program input ${i}: expected shape [${spec.shape}], got a device tensor of shape [${x.dims}]`);
        }
        feeds[spec.name] = x;
        return;
      }
      checkShape(spec, x, i);
      feeds[spec.name] = new ort.Tensor("float32", x.data, [...x.shape]);
    });
    const results = await this.session.run(feeds);
    return this.program.outputs.map((o) => {
      const t = results[o.name];
      if (t.location === "gpu-buffer") return t;
      const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
      return { data, shape: [...t.dims] };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * An ONNX file run as it is, for a model that is only ever evaluated (a bundle's VAE decoder): no
 * import, no gradients, ONNX Runtime's own kernels (its Conv is ≈ 6× the importer's lowered one,
 * bench/RESULTS.md §39, and needs no im2col buffer). Float32 inputs and outputs, fed by name.
 */
export class OnnxFile {
  private constructor(private readonly session: ort.InferenceSession) {}

  /** `file`: a path, or the file's bytes. */
  static async open(file: string | Uint8Array, options: OnnxRunOptions = {}): Promise<OnnxFile> {
    const device = options.device ?? "cpu";
    try {
      return new OnnxFile(typeof file === "string" ? await ort.InferenceSession.create(file, sessionOptions(options)) : await ort.InferenceSession.create(file, sessionOptions(options)));
    } catch (e) {
      const reason = deviceFailure(device, e);
      throw reason === undefined ? e : new DeviceError(reason);
    }
  }

  /**
   * Runs the file on `feeds` and returns the outputs `names` asks for, as float32. A feed of `type`
   * float16, int64, int32 or bool is converted to it (a file that declares such an input).
   */
  async run(feeds: Readonly<Record<string, TypedHostTensor>>, names: readonly string[]): Promise<HostTensor[]> {
    const tensors = Object.fromEntries(Object.entries(feeds).map(([k, x]) => [k, typedTensor(x)]));
    const results = await this.session.run(tensors, [...names]);
    return names.map((n) => {
      const t = results[n];
      const data = t.data instanceof Float32Array ? t.data : t.type === "float16" ? Float32Array.from(t.data as Uint16Array, halfToFloat)
        : Float32Array.from(t.data as ArrayLike<number | bigint>, Number);
      return { data, shape: [...t.dims] };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Creates and runs one tiny session on `device`: a missing provider or adapter is a DeviceError
 * here, before a command writes anything.
 */
export async function probeDevice(device: Device): Promise<void> {
  if (device === "cpu") return;
  const fn = new OnnxFunction(((x: import("@jax-js/jax").Array) => x.mul(2)) as never, { name: "device_probe", device });
  try {
    const [y] = await fn.run([{ data: Float32Array.of(1, 2), shape: [2] }]);
    if (y.data[0] !== 2 || y.data[1] !== 4) throw new DeviceError(`device ${device}: a test program gave [${[...y.data]}], expected [2, 4]`);
  } finally {
    await fn.dispose();
  }
}

function checkShape(spec: TensorSpec, x: HostTensor, i: number): void {
  if (spec.dtype !== "float32") throw new Error(`ONNX program input ${i} is ${spec.dtype}; only float32 inputs are fed`);
  const n = x.shape.reduce((a, b) => a * b, 1);
  if (x.shape.length !== spec.shape.length || x.shape.some((d, j) => d !== spec.shape[j]) || x.data.length !== n) {
    throw new Error(`ONNX program input ${i}: expected shape [${spec.shape}], got [${x.shape}] with ${x.data.length} values`);
  }
}

/**
 * A jax-js function of flat float32 arrays, run by ONNX Runtime. `f`'s outputs (any tree of
 * arrays) come back flattened, in jax-js's tree order. As with `jit`, `f` is traced again for
 * each new shape signature, so it must not consume arrays it closes over (use `.ref`); those
 * become constants of the graph.
 */
export class OnnxFunction {
  readonly #f: (...args: never[]) => unknown;
  readonly #options: OnnxRunOptions & LowerOptions;
  readonly #cache = new Map<string, Promise<OnnxProgram>>();

  /** `options` also name the graph (`name`) and its inputs and outputs (`inputNames`, `outputNames`). */
  constructor(f: (...args: never[]) => unknown, options: OnnxRunOptions & LowerOptions = {}) {
    this.#f = f;
    this.#options = options;
  }

  /** The compiled program for these input shapes (traced, lowered and cached on first use). */
  program(shapes: readonly (readonly number[])[]): Promise<OnnxProgram> {
    const key = shapes.map((s) => s.join("x")).join(",");
    let hit = this.#cache.get(key);
    if (hit === undefined) {
      const { name, inputNames, outputNames } = this.#options;
      const lowered = lowerFunction(this.#f, shapes.map((s) => avalSpec(s)) as never[], { name: name ?? (this.#f.name || "jaxjs"), inputNames, outputNames });
      hit = OnnxProgram.create(lowered, this.#options);
      hit.catch(() => this.#cache.delete(key));
      this.#cache.set(key, hit);
    }
    return hit;
  }

  async run(inputs: readonly HostTensor[]): Promise<HostTensor[]> {
    const program = await this.program(inputs.map((x) => x.shape));
    return program.run(inputs);
  }

  /** `run` with device tensors among inputs and outputs (`OnnxProgram.runMixed`). */
  async runMixed(inputs: readonly (HostTensor | DeviceTensor)[]): Promise<(HostTensor | DeviceTensor)[]> {
    const program = await this.program(inputs.map((x) => (isDeviceTensor(x) ? x.dims : x.shape)));
    return program.runMixed(inputs);
  }

  /** Number of cached sessions (one per input-shape signature). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  async dispose(): Promise<void> {
    const programs = [...this.#cache.values()];
    this.#cache.clear();
    for (const p of programs) await (await p).release();
  }
}
