/**
 * Imports an ONNX model (reader.ts) as a pure, differentiable jax-js function with trainable
 * parameters, so that a user's flow-matching teacher given as ONNX files can be distilled: the
 * student starts as the teacher's own graph and is trained with `grad` and exact `jvp`.
 *
 * - Floating initializers become parameters (float32, by name); integer initializers, and
 *   floating ones read only where a value must be known in advance (a Pow exponent, Clip bounds,
 *   Pad's constant…), stay constants.
 * - Values are either *host* values (JS numbers, known without running the model: constants,
 *   Shape of anything, and every op whose inputs are all host values) or jax-js arrays. Shape
 *   arithmetic subgraphs (Shape → Gather → Concat → Reshape, ConstantOfShape, Range, …) are thus
 *   folded on the host for the shapes of the arrays `apply` is given, and Reshape / Expand / Slice
 *   / Split see static shapes. jax-js stages every op under a trace (omnistaging), which is why
 *   the folding cannot simply run through jax-js.
 * - Every op on arrays is written with primitives that `src/executor/lower.ts` translates (no
 *   `conv` or `gather`: Conv is an im2col of slices and one batched matmul, Gather by constant
 *   indices is slices), so programs built on `apply` lower to ONNX again for onnxruntime.
 * - Arithmetic is float32 throughout (a float16 or bfloat16 model is computed in float32), as is
 *   everything else in this project; integer arrays are jax-js int32.
 *
 * Ownership follows jax-js: `apply` consumes its parameter and input arrays. Inside, every node
 * *borrows* its inputs (each use takes a fresh `.ref`) and the evaluator disposes a value after
 * its last consumer.
 */
import { numpy as np, nn, lax, type Array } from "@jax-js/jax";
import { type OnnxModel, type OnnxNode, type OnnxTensor, type OnnxDim, readOnnxFile } from "./reader.ts";
import { broadcastShapes } from "../numerics/shapes.ts";

/** A tensor on the host: row-major numbers (floats rounded to float32). */
export type HostTensor = { readonly data: Float32Array; readonly shape: readonly number[] };

export type OnnxTensorInfo = { readonly name: string; readonly shape: readonly OnnxDim[]; readonly dtype: string };

export type ImportedOnnx = {
  /** The file the model came from. */
  readonly file: string;
  /** Trainable parameters by initializer name, as read from the file (float32). */
  readonly params: Readonly<Record<string, HostTensor>>;
  /** Graph inputs (initializers excluded), in order; symbolic dims are strings. */
  readonly inputs: readonly OnnxTensorInfo[];
  readonly outputs: readonly OnnxTensorInfo[];
  /** Fresh jax-js arrays of `params`, the starting point for `apply` or training. */
  paramArrays(): Record<string, Array>;
  /**
   * Runs the graph: `inputs` in the order of `this.inputs`, outputs in the order of
   * `this.outputs` (then the tensors `o.tap` names). Pure and traceable (grad, jvp, jit,
   * makeJaxpr); consumes its arguments (and `o.add`'s arrays).
   */
  apply(params: Record<string, Array>, inputs: readonly Array[], o?: ApplyOptions): Array[];
  /** Names of the tensors nodes compute (hook points for `ApplyOptions`). */
  readonly tensorNames: ReadonlySet<string>;
};

/** Graph hooks of `apply`. */
export type ApplyOptions = {
  /** Arrays added to tensors computed by nodes (by tensor name), before any consumer reads them (broadcasting). */
  readonly add?: Readonly<Record<string, Array>>;
  /** Tensors (by name) returned after the graph's outputs, as their consumers read them (after `add`). */
  readonly tap?: readonly string[];
};

/** An ONNX graph this importer cannot run (one line, naming the file). */
export class OnnxImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OnnxImportError";
  }
}

// ---------------------------------------------------------------------------------------------
// Values

type Host = { readonly kind: "host"; readonly dtype: string; readonly shape: readonly number[]; readonly data: number[] };
type Traced = { readonly kind: "array"; readonly a: Array };
type Value = Host | Traced;

/**
 * The largest value a graph may compute: 2²⁴ elements on the host (JS numbers, shape arithmetic and
 * constants), 2²⁸ in an array (1 GiB of float32). A hostile or mistaken shape (ConstantOfShape of
 * [10⁹], an Expand to [10⁵, 10⁵]) is then a one-line error naming the node, not an out-of-memory abort.
 */
const MAX_HOST_ELEMENTS = 1 << 24;
const MAX_ARRAY_ELEMENTS = 1 << 28;

/** prod(shape), refused past `max` (before anything of that size is allocated). */
function checkedSize(shape: readonly number[], max: number, what: string): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!(n <= max)) throw new Error(`${what} of shape [${shape}] (${n} elements) is larger than the ${max} supported`);
  return n;
}

const FLOATS = new Set(["float32", "float16", "bfloat16", "float64"]);
const isFloat = (dtype: string) => FLOATS.has(dtype);
const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
const range = (n: number) => globalThis.Array.from({ length: n }, (_, i) => i);

/** Host value; floats are rounded to float32 (what onnxruntime computes in). */
function host(dtype: string, shape: readonly number[], data: ArrayLike<number>): Host {
  checkedSize(shape, MAX_HOST_ELEMENTS, "a value computed on the host");
  const d = isFloat(dtype) ? "float32" : dtype;
  const out = globalThis.Array.from(data, d === "float32" ? Math.fround : d === "bool" ? (x: number) => (x ? 1 : 0) : (x: number) => x);
  if (out.length !== prod(shape)) throw new Error(`internal: ${out.length} values for shape [${shape}]`);
  return { kind: "host", dtype: d, shape: [...shape], data: out };
}

/** The ONNX-facing dtype of a value. */
function dtypeOf(v: Value): string {
  if (v.kind === "host") return v.dtype;
  const d = v.a.dtype as string;
  return d === "int32" || d === "uint32" ? "int64" : d === "bool" ? "bool" : "float32";
}

/** A host value as a jax-js array (a constant of the traced program). */
function lift(h: Host): Array {
  const shape = [...h.shape];
  if (h.dtype === "float32") return np.array(Float32Array.from(h.data), { shape });
  const ints = np.array(Int32Array.from(h.data, (x) => Math.max(-2147483648, Math.min(2147483647, x))), { shape, dtype: "int32" as never });
  return h.dtype === "bool" ? np.notEqual(ints, 0) : ints;
}

function strides(shape: readonly number[]): number[] {
  const s = shape.map(() => 1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Host tensor of `shape` whose element at multi-index `idx` is source element `src(idx)`. */
function hostGen(h: Host, shape: readonly number[], src: (idx: number[]) => number): Host {
  const n = checkedSize(shape, MAX_HOST_ELEMENTS, "a value computed on the host"), out = new globalThis.Array<number>(n), idx = shape.map(() => 0);
  for (let f = 0; f < n; f++) {
    out[f] = h.data[src(idx)];
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return { kind: "host", dtype: h.dtype, shape: [...shape], data: out };
}


/** Flat index into `shape` (right-aligned against `out`) of output multi-index `idx`, broadcasting. */
function broadcastIndex(shape: readonly number[], st: readonly number[], idx: readonly number[]): number {
  const off = idx.length - shape.length;
  let f = 0;
  for (let a = 0; a < shape.length; a++) if (shape[a] !== 1) f += idx[a + off] * st[a];
  return f;
}

/** Elementwise n-ary op on host values with broadcasting. */
function hostMap(dtype: string, xs: Host[], fn: (...v: number[]) => number): Host {
  const shape = broadcastShapes(...xs.map((x) => x.shape));
  const sts = xs.map((x) => strides(x.shape));
  const n = checkedSize(shape, MAX_HOST_ELEMENTS, "a value computed on the host"), out = new globalThis.Array<number>(n), idx = shape.map(() => 0);
  for (let f = 0; f < n; f++) {
    out[f] = fn(...xs.map((x, i) => x.data[broadcastIndex(x.shape, sts[i], idx)]));
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return host(dtype, shape, out);
}

const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);

// ---------------------------------------------------------------------------------------------
// Node context: how an op reads its inputs and attributes

class Ctx {
  constructor(readonly node: OnnxNode, readonly ins: (Value | undefined)[], readonly opset: number) {}

  has(i: number): boolean {
    return this.ins[i] !== undefined;
  }

  value(i: number): Value {
    const v = this.ins[i];
    if (v === undefined) throw new Error(`input ${i} is missing`);
    return v;
  }

  /** A fresh owned jax-js array of input i (host values lifted). */
  x(i: number): Array {
    const v = this.value(i);
    return v.kind === "host" ? lift(v) : v.a.ref;
  }

  shape(i: number): number[] {
    const v = this.value(i);
    return v.kind === "host" ? [...v.shape] : [...v.a.shape];
  }

  dtype(i: number): string {
    return dtypeOf(this.value(i));
  }

  /** Input i, which must be known without running the model (a shape, axes, indices…). */
  host(i: number): Host {
    const v = this.value(i);
    if (v.kind !== "host") {
      throw new Error(`input ${i} ("${this.node.inputs[i]}") must be a constant or computable from shapes alone, but depends on the model's inputs or parameters`);
    }
    return v;
  }

  ints(i: number): number[] {
    return this.host(i).data;
  }

  allHost(): boolean {
    return this.ins.every((v) => v === undefined || v.kind === "host");
  }

  attr(name: string) {
    return this.node.attributes[name];
  }

  int(name: string, def: number): number {
    return this.attr(name)?.i ?? def;
  }

  float(name: string, def: number): number {
    return this.attr(name)?.f ?? def;
  }

  str(name: string, def: string): string {
    return this.attr(name)?.s ?? def;
  }

  intList(name: string): number[] | undefined {
    const a = this.attr(name);
    return a === undefined ? undefined : [...(a.ints ?? [])];
  }

  /** An int list given as input `i` (newer opsets) or attribute `name` (older). */
  listFrom(i: number, name: string): number[] | undefined {
    if (this.has(i)) return this.ints(i);
    return this.intList(name);
  }
}

type Op = (c: Ctx) => Value | Value[];

const arr = (a: Array): Traced => ({ kind: "array", a });

// ---------------------------------------------------------------------------------------------
// Elementwise ops: a host function (for constant folding) and a jax-js one

type Unary = { host?: (x: number) => number; jax: (x: Array, c: Ctx) => Array };

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

const UNARY: Record<string, Unary> = {
  Neg: { host: (x) => -x, jax: (x) => x.mul(-1) },
  Abs: { host: Math.abs, jax: (x) => np.abs(x) },
  Sqrt: { host: Math.sqrt, jax: (x) => np.sqrt(x) },
  Reciprocal: { host: (x) => 1 / x, jax: (x) => np.reciprocal(x) },
  Exp: { host: Math.exp, jax: (x) => np.exp(x) },
  Log: { host: Math.log, jax: (x) => np.log(x) },
  Tanh: { host: Math.tanh, jax: (x) => np.tanh(x) },
  Sin: { host: Math.sin, jax: (x) => np.sin(x) },
  Cos: { host: Math.cos, jax: (x) => np.cos(x) },
  Floor: { host: Math.floor, jax: (x) => np.floor(x) },
  Ceil: { host: Math.ceil, jax: (x) => np.ceil(x) },
  Sigmoid: { host: (x) => 1 / (1 + Math.exp(-x)), jax: (x) => nn.sigmoid(x) },
  Relu: { host: (x) => Math.max(x, 0), jax: (x) => nn.relu(x) },
  Erf: { jax: (x) => lax.erf(x) },
  Not: { host: (x) => (x ? 0 : 1), jax: (x) => np.logicalNot(x) },
  // softplus(x) = log(1 + exp(x)), written stably
  Softplus: { jax: (x) => nn.softplus(x) },
  // LeakyRelu: x if x ≥ 0 else alpha·x (alpha default 0.01)
  LeakyRelu: { jax: (x, c) => nn.leakyRelu(x, c.float("alpha", 0.01)) },
  // HardSigmoid: max(0, min(1, alpha·x + beta)), alpha 0.2, beta 0.5
  HardSigmoid: { jax: (x, c) => np.clip(x.mul(c.float("alpha", 0.2)).add(c.float("beta", 0.5)), 0, 1) },
  // HardSwish: x · max(0, min(1, x/6 + 1/2))
  HardSwish: { jax: (x) => x.ref.mul(np.clip(x.mul(1 / 6).add(0.5), 0, 1)) },
  Sign: { host: Math.sign, jax: (x) => np.sign(x) },
  Atan: { host: Math.atan, jax: (x) => np.atan(x) },
  Asin: { host: Math.asin, jax: (x) => np.asin(x) },
  Acos: { host: Math.acos, jax: (x) => np.acos(x) },
  Tan: { host: Math.tan, jax: (x) => np.tan(x) },
  Sinh: { host: Math.sinh, jax: (x) => np.sinh(x) },
  Cosh: { host: Math.cosh, jax: (x) => np.cosh(x) },
  // Softsign: x / (1 + |x|)
  Softsign: { jax: (x) => x.ref.div(np.abs(x).add(1)) },
  // Mish: x · tanh(softplus(x))
  Mish: { jax: (x) => x.ref.mul(np.tanh(nn.softplus(x))) },
  // Elu: x if x ≥ 0 else alpha·(eᵡ − 1) (alpha 1); the exponent is clamped at 0 so that the branch not taken stays finite
  Elu: { jax: (x, c) => np.where(np.less(x.ref, 0), np.exp(np.minimum(x.ref, 0)).sub(1).mul(c.float("alpha", 1)), x) },
  // Selu: gamma·(x if x > 0 else alpha·(eᵡ − 1)), the self-normalising constants by default
  Selu: {
    jax: (x, c) => np.where(np.greater(x.ref, 0), x.ref, np.exp(np.minimum(x, 0)).sub(1).mul(c.float("alpha", 1.67326319217681884765625)))
      .mul(c.float("gamma", 1.05070102214813232421875)),
  },
  // Celu: max(0, x) + min(0, alpha·(e^(x/alpha) − 1))
  Celu: {
    jax: (x, c) => {
      const a = c.float("alpha", 1);
      return np.maximum(x.ref, 0).add(np.minimum(np.exp(np.minimum(x, 0).mul(1 / a)).sub(1).mul(a), 0));
    },
  },
  // ThresholdedRelu: x if x > alpha else 0 (alpha 1)
  ThresholdedRelu: { jax: (x, c) => np.where(np.greater(x.ref, c.float("alpha", 1)), x, 0) },
  // Gelu (opset 20): 0.5·x·(1 + erf(x/√2)), or with approximate="tanh" 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
  Gelu: {
    jax: (x, c) => c.str("approximate", "none") === "tanh"
      ? x.ref.mul(0.5).mul(np.tanh(x.ref.add(x.ref.mul(x.ref).mul(x).mul(0.044715)).mul(SQRT_2_OVER_PI)).add(1))
      : x.ref.mul(0.5).mul(lax.erf(x.mul(Math.SQRT1_2)).add(1)),
  },
};

type Binary = { host?: (a: number, b: number) => number; jax: (a: Array, b: Array) => Array; bool?: boolean };

const BINARY: Record<string, Binary> = {
  Add: { host: (a, b) => a + b, jax: (a, b) => a.add(b) },
  Sub: { host: (a, b) => a - b, jax: (a, b) => a.sub(b) },
  Mul: { host: (a, b) => a * b, jax: (a, b) => a.mul(b) },
  Div: { host: (a, b) => a / b, jax: (a, b) => a.div(b) }, // integer division truncates: see hostBinary
  Max: { host: Math.max, jax: (a, b) => np.maximum(a, b) },
  Min: { host: Math.min, jax: (a, b) => np.minimum(a, b) },
  Sum: { host: (a, b) => a + b, jax: (a, b) => a.add(b) },
  Equal: { host: (a, b) => +(a === b), jax: (a, b) => np.equal(a, b), bool: true },
  Less: { host: (a, b) => +(a < b), jax: (a, b) => np.less(a, b), bool: true },
  LessOrEqual: { host: (a, b) => +(a <= b), jax: (a, b) => np.lessEqual(a, b), bool: true },
  Greater: { host: (a, b) => +(a > b), jax: (a, b) => np.greater(a, b), bool: true },
  GreaterOrEqual: { host: (a, b) => +(a >= b), jax: (a, b) => np.greaterEqual(a, b), bool: true },
  And: { host: (a, b) => +(a && b), jax: (a, b) => np.logicalAnd(a, b), bool: true },
  Or: { host: (a, b) => +(a || b), jax: (a, b) => np.logicalOr(a, b), bool: true },
  Xor: { host: (a, b) => +(!a !== !b), jax: (a, b) => np.logicalXor(a, b), bool: true },
};

function unaryOp(name: string): Op {
  const u = UNARY[name];
  return (c) => {
    const v = c.value(0);
    if (v.kind === "host" && u.host) return host(v.dtype, v.shape, v.data.map(u.host));
    return arr(u.jax(c.x(0), c));
  };
}

/** Binary ops (variadic ones, Max Min Sum Mean, fold left). */
function binaryOp(name: string): Op {
  const b = BINARY[name];
  return (c) => {
    const n = c.node.inputs.length;
    if (c.allHost() && b.host) {
      const dt = c.dtype(0);
      const intDiv = name === "Div" && !isFloat(dt);
      const fn = intDiv ? (x: number, y: number) => Math.trunc(x / y) : b.host;
      let acc = c.host(0);
      for (let i = 1; i < n; i++) acc = hostMap(b.bool ? "bool" : dt, [acc, c.host(i)], fn);
      return acc;
    }
    let acc = c.x(0);
    for (let i = 1; i < n; i++) acc = b.jax(acc, c.x(i));
    return arr(acc);
  };
}

/** PRelu: x if x ≥ 0 else slope·x, the slope broadcast to x (a parameter when it is an initializer). */
const PRelu: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], (x, a) => (x < 0 ? a * x : x));
  return arr(np.where(np.less(c.x(0), 0), c.x(0).mul(c.x(1)), c.x(0)));
};

// ---------------------------------------------------------------------------------------------
// Shape-changing helpers on arrays (lowerable primitives only)

/** Elements start, start+step, … (count of them) along `axis`; step ≥ 1. Slices and reshapes only. */
function sliceAxis(x: Array, axis: number, start: number, count: number, step: number): Array {
  const dim = x.shape[axis];
  if (start === 0 && count === dim && step === 1) return x;
  const idx = (lo: number, hi: number) => x.shape.map((_, a) => (a === axis ? [lo, hi] : [])) as [number, number][];
  if (step === 1 || count <= 1) return x.slice(...idx(start, start + count));
  // Strided: take [start, start + count·step) (zero-padded past the end), view as [count, step], keep column 0.
  const need = start + count * step;
  let y = need <= dim ? x.slice(...idx(start, need))
    : np.pad(x.slice(...idx(start, dim)), x.shape.map((_, a) => (a === axis ? [0, need - dim] : [0, 0])) as [number, number][]);
  const shp = [...y.shape];
  y = y.reshape([...shp.slice(0, axis), count, step, ...shp.slice(axis + 1)]);
  y = y.slice(...y.shape.map((_, a) => (a === axis + 1 ? [0, 1] : [])) as [number, number][]);
  return y.reshape([...shp.slice(0, axis), count, ...shp.slice(axis + 1)]);
}

/** ONNX Slice bounds of one axis → (start, count, step), step may be negative. */
function sliceBounds(dim: number, start: number, end: number, step: number): [number, number] {
  if (step === 0) throw new Error("Slice step 0");
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
    return [start, Math.max(0, Math.ceil((end - start) / step))];
  }
  start = Math.min(Math.max(start, 0), dim - 1);
  end = Math.min(Math.max(end, -1), dim - 1);
  return [start, Math.max(0, Math.ceil((start - end) / -step))];
}

// ---------------------------------------------------------------------------------------------
// Structural ops (host and array)

function reshapeTarget(inShape: readonly number[], spec: readonly number[], allowzero: boolean): number[] {
  const out = spec.map((d, i) => (d === 0 && !allowzero ? inShape[i] : d));
  const known = prod(out.filter((d) => d !== -1));
  const n = prod(inShape);
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1) throw new Error(`Reshape shape [${spec}] has more than one -1`);
  if (neg === 1) {
    if (known === 0 || n % known !== 0) throw new Error(`cannot reshape [${inShape}] to [${spec}]`);
    out[out.indexOf(-1)] = n / known;
  }
  if (prod(out) !== n) throw new Error(`cannot reshape [${inShape}] (${n} elements) to [${spec}] → [${out}]`);
  return out;
}

function reshapeValue(c: Ctx, i: number, shape: number[]): Value {
  const v = c.value(i);
  if (v.kind === "host") return { ...v, shape };
  return arr(c.x(i).reshape(shape));
}

function transposeValue(v: Value, x: () => Array, perm: number[]): Value {
  if (v.kind === "host") {
    const st = strides(v.shape);
    return hostGen(v, perm.map((p) => v.shape[p]), (idx) => idx.reduce((f, d, a) => f + d * st[perm[a]], 0));
  }
  return arr(x().transpose(perm));
}

const Reshape: Op = (c) => reshapeValue(c, 0, reshapeTarget(c.shape(0), c.ints(1), c.int("allowzero", 0) === 1));

const Transpose: Op = (c) => {
  const rank = c.shape(0).length;
  const perm = c.intList("perm") ?? range(rank).reverse();
  return transposeValue(c.value(0), () => c.x(0), perm.map((p) => normAxis(p, rank)));
};

const Flatten: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 1), s.length);
  return reshapeValue(c, 0, [prod(s.slice(0, axis)), prod(s.slice(axis))]);
};

const Squeeze: Op = (c) => {
  const s = c.shape(0);
  const axes = (c.listFrom(1, "axes") ?? range(s.length).filter((a) => s[a] === 1)).map((a) => normAxis(a, s.length));
  for (const a of axes) if (s[a] !== 1) throw new Error(`cannot squeeze axis ${a} of extent ${s[a]}`);
  return reshapeValue(c, 0, s.filter((_, a) => !axes.includes(a)));
};

const Unsqueeze: Op = (c) => {
  const s = c.shape(0);
  const axesRaw = c.listFrom(1, "axes");
  if (!axesRaw) throw new Error("Unsqueeze without axes");
  const rank = s.length + axesRaw.length;
  const axes = axesRaw.map((a) => normAxis(a, rank));
  const out: number[] = [];
  let j = 0;
  for (let a = 0; a < rank; a++) out.push(axes.includes(a) ? 1 : s[j++]);
  return reshapeValue(c, 0, out);
};

const Concat: Op = (c) => {
  const present = range(c.node.inputs.length).filter((i) => c.has(i) && prod(c.shape(i)) > 0);
  const rank = c.shape(0).length;
  const axis = normAxis(c.int("axis", 0), rank);
  if (present.length === 0) return c.value(0);
  if (c.allHost()) {
    const parts = present.map((i) => c.host(i));
    const shape = [...parts[0].shape];
    shape[axis] = parts.reduce((s, p) => s + p.shape[axis], 0);
    const outer = prod(shape.slice(0, axis)), data: number[] = [];
    for (let o = 0; o < outer; o++) {
      for (const p of parts) {
        const chunk = prod(p.shape.slice(axis));
        for (let k = 0; k < chunk; k++) data.push(p.data[o * chunk + k]);
      }
    }
    return host(parts[0].dtype, shape, data);
  }
  if (present.length === 1) return arr(c.x(present[0]));
  return arr(np.concatenate(present.map((i) => c.x(i)), axis));
};

const Split: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 0), s.length);
  const n = c.node.outputs.length;
  let sizes = c.listFrom(1, "split");
  if (!sizes) {
    // Equal parts; with num_outputs (opset 18) the last may be smaller.
    const part = Math.ceil(s[axis] / n);
    sizes = range(n).map((i) => Math.min(part, s[axis] - i * part));
  }
  let at = 0;
  return sizes.map((size) => {
    const start = at;
    at += size;
    return sliceValue(c, 0, [axis], [start], [size], [1]);
  });
};

/** Slice of input i on `axes` (start, count, step ≥ 1 or < 0). */
function sliceValue(c: Ctx, i: number, axes: number[], starts: number[], counts: number[], steps: number[]): Value {
  const v = c.value(i);
  const shape = c.shape(i);
  if (v.kind === "host") {
    const st = strides(shape);
    const out = [...shape];
    axes.forEach((a, k) => (out[a] = counts[k]));
    return hostGen(v, out, (idx) => idx.reduce((f, d, a) => {
      const k = axes.indexOf(a);
      return f + (k < 0 ? d : starts[k] + d * steps[k]) * st[a];
    }, 0));
  }
  let x = c.x(i);
  axes.forEach((a, k) => {
    let start = starts[k], step = steps[k];
    if (step < 0) {
      // Reverse the axis, then slice forwards: element start − j·|step| is (dim−1−start) + j·|step| of the flipped axis.
      x = np.flip(x, a);
      start = shape[a] - 1 - start;
      step = -step;
    }
    x = sliceAxis(x, a, start, counts[k], step);
  });
  return arr(x);
}

const Slice: Op = (c) => {
  const s = c.shape(0);
  const old = c.opset < 10;
  const starts = old ? c.intList("starts")! : c.ints(1);
  const ends = old ? c.intList("ends")! : c.ints(2);
  const axes = ((old ? c.intList("axes") : c.has(3) ? c.ints(3) : undefined) ?? range(starts.length)).map((a) => normAxis(a, s.length));
  const steps = !old && c.has(4) ? c.ints(4) : starts.map(() => 1);
  const bounds = axes.map((a, k) => sliceBounds(s[a], starts[k], ends[k], steps[k]));
  return sliceValue(c, 0, axes, bounds.map((b) => b[0]), bounds.map((b) => b[1]), steps);
};

const Gather: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 0), s.length);
  const iv = c.value(1);
  if (iv.kind !== "host") {
    // Indices computed at run time: jax-js's gather (not lowerable to ONNX by lower.ts).
    const idx = c.x(1);
    const fixed = np.where(np.less(idx.ref, 0), idx.ref.add(s[axis]), idx);
    return arr(np.take(c.x(0), fixed, axis));
  }
  const idx = iv.data.map((i) => (i < 0 ? i + s[axis] : i));
  for (const i of idx) if (i < 0 || i >= s[axis]) throw new Error(`Gather index ${i} out of range for axis ${axis} of extent ${s[axis]}`);
  const outShape = [...s.slice(0, axis), ...iv.shape, ...s.slice(axis + 1)];
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s), r = iv.shape.length;
    return hostGen(v, outShape, (o) => {
      let f = 0;
      for (let a = 0; a < axis; a++) f += o[a] * st[a];
      const flat = r === 0 ? 0 : o.slice(axis, axis + r).reduce((g, d, k) => g * iv.shape[k] + d, 0);
      f += idx[flat] * st[axis];
      for (let a = axis + 1; a < s.length; a++) f += o[a + r - 1] * st[a];
      return f;
    });
  }
  // Constant indices: runs of consecutive indices become slices, concatenated along the axis.
  const pieces: Array[] = [];
  let k = 0;
  while (k < idx.length) {
    let e = k + 1;
    while (e < idx.length && idx[e] === idx[e - 1] + 1) e++;
    pieces.push(sliceAxis(c.x(0), axis, idx[k], e - k, 1));
    k = e;
  }
  const cat = pieces.length === 1 ? pieces[0] : np.concatenate(pieces, axis);
  return arr(cat.reshape(outShape));
};

const Expand: Op = (c) => {
  const shape = broadcastShapes(c.shape(0), c.ints(1));
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(v.shape);
    return hostGen(v, shape, (idx) => broadcastIndex(v.shape, st, idx));
  }
  return arr(np.broadcastTo(c.x(0), shape));
};

const Tile: Op = (c) => {
  const reps = c.ints(1);
  const s = c.shape(0);
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s);
    return hostGen(v, s.map((d, a) => d * reps[a]), (idx) => idx.reduce((f, d, a) => f + (d % s[a]) * st[a], 0));
  }
  return arr(np.tile(c.x(0), reps));
};

const Where: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(1), [c.host(0), c.host(1), c.host(2)], (k, a, b) => (k ? a : b));
  return arr(np.where(c.x(0), c.x(1), c.x(2)));
};

const CAST_TO: Record<number, string> = {
  1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
  11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
};

const Cast: Op = (c) => {
  const to = CAST_TO[c.int("to", 1)];
  if (!to) throw new Error(`Cast to type ${c.int("to", 1)} is not supported`);
  const v = c.value(0);
  if (v.kind === "host") {
    const conv = isFloat(to) ? (x: number) => x : to === "bool" ? (x: number) => +(x !== 0) : Math.trunc;
    return host(to, v.shape, v.data.map(conv));
  }
  const target = isFloat(to) ? "float32" : to === "bool" ? "bool" : "int32";
  const x = c.x(0);
  if ((x.dtype as string) === target) return arr(x);
  if (target === "bool") return arr(np.notEqual(x, 0));
  return arr(np.astype(x, target as never));
};

// ---------------------------------------------------------------------------------------------
// Sources of constants

function tensorValue(t: OnnxTensor): Host {
  return host(t.dtype, t.dims, t.data);
}

const Constant: Op = (c) => {
  const a = c.node.attributes;
  if (a.value?.t) return tensorValue(a.value.t);
  if (a.value_float) return host("float32", [], [a.value_float.f!]);
  if (a.value_floats) return host("float32", [a.value_floats.floats!.length], a.value_floats.floats!);
  if (a.value_int) return host("int64", [], [a.value_int.i!]);
  if (a.value_ints) return host("int64", [a.value_ints.ints!.length], a.value_ints.ints!);
  throw new Error("Constant without a supported value attribute");
};

const Shape: Op = (c) => {
  const s = c.shape(0);
  const r = s.length;
  const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
  const start = clamp(c.int("start", 0)), end = clamp(c.attr("end")?.i ?? r);
  const out = s.slice(start, Math.max(start, end));
  return host("int64", [out.length], out);
};

const Size: Op = (c) => host("int64", [], [prod(c.shape(0))]);

const ConstantOfShape: Op = (c) => {
  const shape = c.ints(0);
  const t = c.attr("value")?.t;
  const fill = t ? t.data[0] : 0;
  return host(t ? t.dtype : "float32", shape, new globalThis.Array(checkedSize(shape, MAX_HOST_ELEMENTS, "ConstantOfShape")).fill(fill));
};

const Range: Op = (c) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => c.host(i).data[0]);
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  checkedSize([n], MAX_HOST_ELEMENTS, "Range");
  return host(c.dtype(0), [n], range(n).map((i) => start + i * delta));
};

// ---------------------------------------------------------------------------------------------
// Arithmetic ops with attributes

const Pow: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], Math.pow);
  const e = c.value(1);
  if (e.kind === "host" && e.data.length === 1) {
    // Constant exponents as products or sqrt: exact derivatives at x ≤ 0 and lowerable primitives.
    const p = e.data[0];
    if (p === 1) return arr(c.x(0));
    if (p === 2) return arr(c.x(0).mul(c.x(0)));
    if (p === 3) return arr(c.x(0).mul(c.x(0)).mul(c.x(0)));
    if (p === 0.5) return arr(np.sqrt(c.x(0)));
    if (p === -1) return arr(np.reciprocal(c.x(0)));
    if (p === -0.5) return arr(np.reciprocal(np.sqrt(c.x(0))));
  }
  return arr(np.power(c.x(0), c.x(1)));
};

const Mean: Op = (c) => {
  let acc = c.x(0);
  for (let i = 1; i < c.node.inputs.length; i++) acc = acc.add(c.x(i));
  return arr(acc.mul(1 / c.node.inputs.length));
};

const Clip: Op = (c) => {
  const lo = c.opset < 11 ? c.attr("min")?.f : c.has(1) ? c.host(1).data[0] : undefined;
  const hi = c.opset < 11 ? c.attr("max")?.f : c.has(2) ? c.host(2).data[0] : undefined;
  if (c.value(0).kind === "host") {
    return hostMap(c.dtype(0), [c.host(0)], (x) => Math.min(Math.max(x, lo ?? -Infinity), hi ?? Infinity));
  }
  let x = c.x(0);
  if (lo !== undefined) x = np.maximum(x, lo);
  if (hi !== undefined) x = np.minimum(x, hi);
  return arr(x);
};

const Mod: Op = (c) => {
  const fmod = c.int("fmod", 0) === 1;
  // fmod=0 (integers): the result has the sign of the divisor (Python's %); fmod=1: of the dividend (C's fmod).
  const f = fmod ? (a: number, b: number) => a % b : (a: number, b: number) => ((a % b) + b) % b;
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], f);
  return arr(fmod ? np.fmod(c.x(0), c.x(1)) : np.remainder(c.x(0), c.x(1)));
};

const Identity: Op = (c) => c.value(0);

/** Dropout at inference: the identity, and an all-true mask when asked for. */
const Dropout: Op = (c) => {
  const out: Value[] = [c.value(0)];
  if (c.node.outputs.length > 1) out.push(host("bool", c.shape(0), new globalThis.Array(prod(c.shape(0))).fill(1)));
  return out;
};

/** MatMul: numpy matmul semantics (batched, broadcast; 1-D operands promoted). */
const MatMul: Op = (c) => arr(np.matmul(c.x(0), c.x(1)));

/** Gemm: alpha·A'·B' + beta·C, A' = Aᵀ if transA, B' = Bᵀ if transB, C broadcast. */
const Gemm: Op = (c) => {
  let a = c.x(0), b = c.x(1);
  if (c.int("transA", 0)) a = a.transpose([1, 0]);
  if (c.int("transB", 0)) b = b.transpose([1, 0]);
  let y = np.matmul(a, b);
  const alpha = c.float("alpha", 1), beta = c.float("beta", 1);
  if (alpha !== 1) y = y.mul(alpha);
  if (c.has(2) && beta !== 0) y = y.add(beta === 1 ? c.x(2) : c.x(2).mul(beta));
  return arr(y);
};

function reduceAxes(c: Ctx, rank: number): number[] | null {
  // Axes: the second input from opset 13 (ReduceSum) / 18 (others), else the attribute. None: all axes.
  const axes = c.has(1) ? c.ints(1) : c.intList("axes");
  if (axes === undefined || axes.length === 0) return c.int("noop_with_empty_axes", 0) ? null : range(rank);
  return axes.map((a) => normAxis(a, rank));
}

type Reduction = "sum" | "mean" | "max" | "min" | "prod" | "sumsquare" | "l2" | "l1" | "logsum" | "logsumexp";

function reduceOp(kind: Reduction): Op {
  return (c) => {
    const s = c.shape(0);
    const axes = reduceAxes(c, s.length);
    const keepdims = c.int("keepdims", 1) === 1;
    if (axes === null) return c.value(0);
    let x = c.x(0);
    if (kind === "sumsquare" || kind === "l2") x = x.ref.mul(x);
    if (kind === "l1") x = np.abs(x);
    const opts = { keepdims };
    let y: Array;
    switch (kind) {
      case "mean": y = np.mean(x, axes, opts); break;
      case "max": y = np.max(x, axes, opts); break;
      case "min": y = np.min(x, axes, opts); break;
      case "prod": y = np.prod(x, axes, opts); break;
      case "logsumexp": y = nn.logsumexp(x, axes, opts); break;
      default: y = np.sum(x, axes, opts);
    }
    return arr(kind === "l2" ? np.sqrt(y) : kind === "logsum" ? np.log(y) : y);
  };
}

/** Softmax / LogSoftmax: opset ≥ 13 along `axis` (default −1); before, over the axes from `axis` on (default 1), flattened. */
function softmaxOp(log: boolean): Op {
  return (c) => {
    const s = c.shape(0);
    const f = (x: Array, a: number) => (log ? nn.logSoftmax(x, a) : nn.softmax(x, a));
    if (c.opset >= 13) return arr(f(c.x(0), normAxis(c.int("axis", -1), s.length)));
    const axis = normAxis(c.int("axis", 1), s.length);
    const flat = c.x(0).reshape([prod(s.slice(0, axis)), prod(s.slice(axis))]);
    return arr(f(flat, 1).reshape(s));
  };
}

/** (x − mean)/√(var + ε) over `axes` (biased variance); also returns mean and 1/√(var + ε). */
function normalize(x: Array, axes: number[], eps: number): [Array, Array, Array] {
  const mean = np.mean(x.ref, axes, { keepdims: true });
  const centred = x.sub(mean.ref);
  const variance = np.mean(centred.ref.mul(centred.ref), axes, { keepdims: true });
  const inv = np.reciprocal(np.sqrt(variance.add(eps)));
  return [centred.mul(inv.ref), mean, inv];
}

/** LayerNormalization (opset 17): normalise over axes axis…rank−1, then ·Scale + B; optional outputs Mean, InvStdDev. */
const LayerNormalization: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", -1), s.length);
  const [y0, mean, inv] = normalize(c.x(0), range(s.length).slice(axis), c.float("epsilon", 1e-5));
  let y = y0.mul(c.x(1));
  if (c.has(2)) y = y.add(c.x(2));
  const outs: Value[] = [arr(y)];
  if (c.node.outputs.length > 1) outs.push(arr(mean));
  else mean.dispose();
  if (c.node.outputs.length > 2) outs.push(arr(inv));
  else inv.dispose();
  return outs;
};

/** RMSNormalization (opset 23): x / √(mean of x² over axes axis…rank−1 + ε) · scale. */
const RMSNormalization: Op = (c) => {
  const s = c.shape(0);
  const axes = range(s.length).slice(normAxis(c.int("axis", -1), s.length));
  const x = c.x(0);
  const ms = np.mean(x.ref.mul(x.ref), axes, { keepdims: true });
  return arr(x.mul(np.reciprocal(np.sqrt(ms.add(c.float("epsilon", 1e-5))))).mul(c.x(1)));
};

/** Per-channel [C] vector as [1, C, 1, …] for an NC… tensor of rank `rank`. */
const channelShape = (C: number, rank: number) => [1, C, ...range(rank - 2).map(() => 1)];

/** InstanceNormalization: per sample and channel over the spatial axes, then ·scale[C] + B[C]. */
const InstanceNormalization: Op = (c) => {
  const s = c.shape(0);
  const [y, mean, inv] = normalize(c.x(0), range(s.length).slice(2), c.float("epsilon", 1e-5));
  mean.dispose(); inv.dispose();
  const cs = channelShape(s[1], s.length);
  return arr(y.mul(c.x(1).reshape(cs)).add(c.x(2).reshape(cs)));
};

/**
 * GroupNormalization: channels in `num_groups` groups, each normalised over its channels and the
 * spatial axes; scale and bias per channel (opset 21) or per group (opset 18, repeated over the group's channels).
 */
const GroupNormalization: Op = (c) => {
  const s = c.shape(0);
  const G = c.int("num_groups", 1), C = s[1];
  const grouped = c.x(0).reshape([s[0], G, C / G, ...s.slice(2)]);
  const [y0, mean, inv] = normalize(grouped, range(s.length + 1).slice(2), c.float("epsilon", 1e-5));
  mean.dispose(); inv.dispose();
  const y = y0.reshape(s);
  const perChannel = (i: number) => {
    const v = c.x(i);
    const n = v.shape[0];
    const full = n === C ? v : np.broadcastTo(v.reshape([G, 1]), [G, C / G]).reshape([C]);
    return full.reshape(channelShape(C, s.length));
  };
  return arr(y.mul(perChannel(1)).add(perChannel(2)));
};

/** BatchNormalization at inference: (x − mean)/√(var + ε)·scale + B, all [C]. */
const BatchNormalization: Op = (c) => {
  const s = c.shape(0);
  const cs = channelShape(s[1], s.length);
  const inv = np.reciprocal(np.sqrt(c.x(4).add(c.float("epsilon", 1e-5)))).mul(c.x(1)).reshape(cs);
  return arr(c.x(0).sub(c.x(3).reshape(cs)).mul(inv).add(c.x(2).reshape(cs)));
};

/** Pad (opset ≥ 11, mode "constant"): pads = [begin…, end…] on `axes` (default all); negative pads crop. */
const Pad: Op = (c) => {
  const s = c.shape(0);
  const mode = c.str("mode", "constant");
  if (mode !== "constant") throw new Error(`Pad mode "${mode}" is not supported (only "constant")`);
  const pads = c.opset < 11 ? c.intList("pads")! : c.ints(1);
  const value = c.opset < 11 ? c.float("value", 0) : c.has(2) ? c.host(2).data[0] : 0;
  const axes = (c.has(3) ? c.ints(3) : range(s.length)).map((a) => normAxis(a, s.length));
  const n = axes.length;
  const widths = s.map(() => [0, 0] as [number, number]);
  axes.forEach((a, k) => (widths[a] = [pads[k], pads[k + n]]));
  // Crop negative pads first, then pad (x − value) with zeros and add value back: a constant pad.
  let x = c.x(0);
  widths.forEach(([lo, hi], a) => {
    if (lo < 0 || hi < 0) {
      const start = Math.max(0, -lo), end = x.shape[a] - Math.max(0, -hi);
      x = sliceAxis(x, a, start, end - start, 1);
    }
  });
  const pos = widths.map(([lo, hi]) => [Math.max(lo, 0), Math.max(hi, 0)] as [number, number]);
  if (value !== 0) x = x.sub(value);
  x = np.pad(x, pos);
  return arr(value !== 0 ? x.add(value) : x);
};

// ---------------------------------------------------------------------------------------------
// Convolutions

/** Conv / ConvTranspose attributes resolved against the spatial extents. */
function convPads(c: Ctx, spatial: number[], kernel: number[], strides: number[], dil: number[]): [number[], number[]] {
  const autoPad = c.str("auto_pad", "NOTSET");
  const n = spatial.length;
  if (autoPad === "NOTSET") {
    const pads = c.intList("pads") ?? range(2 * n).map(() => 0);
    return [pads.slice(0, n), pads.slice(n)];
  }
  if (autoPad === "VALID") return [range(n).map(() => 0), range(n).map(() => 0)];
  // SAME_UPPER / SAME_LOWER: output = ceil(input / stride), the odd pad at the end (UPPER) or start.
  const total = spatial.map((d, i) => Math.max(0, (Math.ceil(d / strides[i]) - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - d));
  const small = total.map((t) => Math.floor(t / 2)), big = total.map((t, i) => t - small[i]);
  return autoPad === "SAME_UPPER" ? [small, big] : [big, small];
}

/**
 * The taps of every sliding window over the spatial axes of x [N, C, …] (consumed): one strided
 * slice [N, C, …out] per kernel offset, in row-major kernel order. Conv and the pools are built on it.
 */
function windowTaps(x: Array, kernel: readonly number[], strides: readonly number[], dil: readonly number[], out: readonly number[]): Array[] {
  const n = kernel.length, taps: Array[] = [];
  for (let f = 0; f < prod(kernel); f++) {
    let win = x.ref, rest = f;
    for (let d = n - 1; d >= 0; d--) {
      const kd = rest % kernel[d];
      rest = Math.floor(rest / kernel[d]);
      win = sliceAxis(win, 2 + d, kd * dil[d], out[d], strides[d]);
    }
    taps.push(win);
  }
  x.dispose();
  return taps;
}

/**
 * Grouped N-d convolution by im2col: one strided window of x per kernel offset (slices, so that
 * lower.ts can translate it), stacked to [N, G, Cg·K, P], times the weights [G, Mg, Cg·K].
 * x [N, C, …], w [M, C/G, …k]; pads may be negative (crop).
 */
function convCore(x: Array, w: Array, groups: number, strides: number[], dil: number[], padsLo: number[], padsHi: number[]): Array {
  const [N, C, ...sp] = x.shape;
  const [M, Cg, ...k] = w.shape;
  const n = sp.length;
  if (Cg * groups !== C) throw new Error(`Conv: weight [${w.shape}] with group ${groups} does not fit input channels ${C}`);
  // Crop negative pads, pad positive ones.
  for (let d = 0; d < n; d++) {
    const lo = padsLo[d], hi = padsHi[d];
    if (lo < 0 || hi < 0) {
      const start = Math.max(0, -lo), end = x.shape[2 + d] - Math.max(0, -hi);
      x = sliceAxis(x, 2 + d, start, end - start, 1);
    }
  }
  if (padsLo.some((p) => p > 0) || padsHi.some((p) => p > 0)) {
    x = np.pad(x, [[0, 0], [0, 0], ...range(n).map((d) => [Math.max(padsLo[d], 0), Math.max(padsHi[d], 0)] as [number, number])]);
  }
  const ext = x.shape.slice(2);
  const out = range(n).map((d) => Math.floor((ext[d] - dil[d] * (k[d] - 1) - 1) / strides[d]) + 1);
  if (out.some((o) => o <= 0)) throw new Error(`Conv: output extent [${out}] is empty`);
  const K = prod(k), P = prod(out);
  const windows = windowTaps(x, k, strides, dil, out).map((win) => win.reshape([N, C, 1, P]));
  const cols = (K === 1 ? windows[0] : np.concatenate(windows, 2)).reshape([N, groups, Cg * K, P]);
  const wm = w.reshape([1, groups, M / groups, Cg * K]);
  return np.matmul(wm, cols).reshape([N, M, ...out]);
}

/** Conv: x [N, C, …], W [M, C/group, …k], optional B [M]; pads, strides, dilations, group, auto_pad. */
const Conv: Op = (c) => {
  const s = c.shape(0), ws = c.shape(1);
  const n = s.length - 2;
  const kernel = c.intList("kernel_shape") ?? ws.slice(2);
  const strides = c.intList("strides") ?? range(n).map(() => 1);
  const dil = c.intList("dilations") ?? range(n).map(() => 1);
  const [lo, hi] = convPads(c, s.slice(2), kernel, strides, dil);
  let y = convCore(c.x(0), c.x(1), c.int("group", 1), strides, dil, lo, hi);
  if (c.has(2)) y = y.add(c.x(2).reshape(channelShape(ws[0], s.length)));
  return arr(y);
};

/**
 * ConvTranspose: the adjoint of a strided conv. x [N, C, …], W [C, M/group, …k]. Written as a
 * stride-1 conv of x with zeros inserted between its elements (stride − 1 of them), padded by
 * dilation·(k − 1) − pad (end: + output_padding), with the kernel flipped and its in/out
 * channels swapped per group. output_shape is honoured through the pads it implies.
 */
const ConvTranspose: Op = (c) => {
  const s = c.shape(0), ws = c.shape(1);
  const n = s.length - 2, G = c.int("group", 1);
  const [N, C, ...sp] = s;
  const [, Mg, ...k] = ws;
  const strides = c.intList("strides") ?? range(n).map(() => 1);
  const dil = c.intList("dilations") ?? range(n).map(() => 1);
  const outPad = c.intList("output_padding") ?? range(n).map(() => 0);
  let padsLo: number[], padsHi: number[];
  const outputShape = c.intList("output_shape");
  const autoPad = c.str("auto_pad", "NOTSET");
  if (outputShape || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    const target = outputShape ? outputShape.slice(-n) : sp.map((d, i) => d * strides[i]);
    const total = range(n).map((i) => strides[i] * (sp[i] - 1) + outPad[i] + (k[i] - 1) * dil[i] + 1 - target[i]);
    const half = total.map((t) => Math.floor(t / 2));
    [padsLo, padsHi] = autoPad === "SAME_UPPER" ? [half, total.map((t, i) => t - half[i])] : [total.map((t, i) => t - half[i]), half];
  } else {
    const pads = c.intList("pads") ?? range(2 * n).map(() => 0);
    [padsLo, padsHi] = [pads.slice(0, n), pads.slice(n)];
  }
  // Zero insertion: [N, C, I] → [N, C, I, stride] (zeros after each element) → [N, C, I·stride] → first (I−1)·stride + 1.
  let x = c.x(0);
  for (let d = 0; d < n; d++) {
    const st = strides[d];
    if (st === 1) continue;
    const ax = 2 + d, shp = x.shape;
    x = x.reshape([...shp.slice(0, ax + 1), 1, ...shp.slice(ax + 1)]);
    x = np.pad(x, x.shape.map((_, a) => (a === ax + 1 ? [0, st - 1] : [0, 0])) as [number, number][]);
    x = x.reshape([...shp.slice(0, ax), shp[ax] * st, ...shp.slice(ax + 1)]);
    x = sliceAxis(x, ax, 0, (shp[ax] - 1) * st + 1, 1);
  }
  // W [C, Mg, k] = [G, Cg, Mg, k] → [G, Mg, Cg, k] → [M, Cg, k], flipped spatially.
  const Cg = C / G;
  let w = c.x(1).reshape([G, Cg, Mg, ...k]).transpose([0, 2, 1, ...range(n).map((d) => 3 + d)]).reshape([G * Mg, Cg, ...k]);
  w = np.flip(w, range(n).map((d) => 2 + d));
  const lo = range(n).map((d) => dil[d] * (k[d] - 1) - padsLo[d]);
  const hi = range(n).map((d) => dil[d] * (k[d] - 1) - padsHi[d] + outPad[d]);
  let y = convCore(x, w, G, range(n).map(() => 1), dil, lo, hi);
  if (c.has(2)) y = y.add(c.x(2).reshape(channelShape(G * Mg, s.length)));
  void N;
  return arr(y);
};

// ---------------------------------------------------------------------------------------------
// Resampling, pooling and rearranging (VAE decoders, upsampling blocks, pixel shuffles)

/** x with the constant `m` [inLen, outLen] applied along `axis`: y[…, o, …] = Σ_i m[i, o]·x[…, i, …] (a matmul). */
function alongAxis(x: Array, axis: number, m: Float32Array, outLen: number): Array {
  const rank = x.shape.length, inLen = x.shape[axis];
  const perm = [...range(rank).filter((a) => a !== axis), axis];
  const back = range(rank).map((a) => (a < axis ? a : a === axis ? rank - 1 : a - 1));
  const y = np.matmul(x.transpose(perm), np.array(m, { shape: [inLen, outLen] }));
  return y.transpose(back);
}

type Sampling = {
  readonly mode: string; // nearest | linear | cubic
  readonly coord: string; // coordinate_transformation_mode
  readonly nearest: string; // nearest_mode, or "simple" (Upsample, Resize-10)
  readonly cubicA: number;
  readonly excludeOutside: boolean;
};

/** ONNX Resize's map from an output coordinate to an input one, along an axis of inLen → outLen at `scale`. */
function sourceCoordinate(o: number, inLen: number, outLen: number, scale: number, coord: string): number {
  const f = Math.fround;
  switch (coord) {
    case "half_pixel": return f(f(o + 0.5) / scale) - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = outLen / f(scale * inLen), centre = inLen / 2;
      return centre * (1 - adjustment) + f(o + 0.5) / scale - 0.5;
    }
    case "pytorch_half_pixel": return outLen > 1 ? f(f(o + 0.5) / scale) - 0.5 : 0;
    case "align_corners": return outLen === 1 ? 0 : f((o * (inLen - 1)) / (outLen - 1));
    case "asymmetric": return f(o / scale);
    case "tf_half_pixel_for_nn": return f(f(o + 0.5) / scale);
    default: throw new Error(`coordinate_transformation_mode "${coord}" is not supported`);
  }
}

function nearestIndex(x: number, mode: string, downsampling: boolean): number {
  const half = x - Math.floor(x) === 0.5;
  switch (mode) {
    case "round_prefer_floor": return half ? Math.floor(x) : Math.round(x);
    case "round_prefer_ceil": return half ? Math.ceil(x) : Math.round(x);
    case "floor": return Math.floor(x);
    case "ceil": return Math.ceil(x);
    case "simple": return downsampling ? Math.ceil(x) : Math.trunc(x); // what onnxruntime does before opset 11
    default: throw new Error(`nearest_mode "${mode}" is not supported`);
  }
}

/** Keys' cubic convolution weights of the taps at ⌊x⌋ − 1 … ⌊x⌋ + 2, for x − ⌊x⌋ = r (ONNX's coefficient a). */
function cubicWeights(r: number, a: number): number[] {
  const far = (d: number) => ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; // 1 ≤ |d| ≤ 2
  const near = (d: number) => ((a + 2) * d - (a + 3)) * d * d + 1; // |d| ≤ 1
  return [far(r + 1), near(r), near(1 - r), far(2 - r)];
}

/**
 * The resampling of one axis as a [inLen, outLen] matrix: column o holds the weights of the input
 * elements output o reads. Taps outside the axis read its edge element (or, with exclude_outside,
 * get weight 0 and the rest is renormalised), as ONNX specifies.
 */
function samplingMatrix(inLen: number, outLen: number, scale: number, s: Sampling): Float32Array {
  const m = new Float32Array(inLen * outLen);
  const edge = (i: number) => Math.min(Math.max(i, 0), inLen - 1);
  for (let o = 0; o < outLen; o++) {
    const x = sourceCoordinate(o, inLen, outLen, scale, s.coord);
    if (s.mode === "nearest") {
      m[edge(nearestIndex(x, s.nearest, scale < 1)) * outLen + o] = 1;
      continue;
    }
    const i0 = Math.floor(x), r = x - i0;
    const taps: [number, number][] = s.mode === "linear" ? [[i0, 1 - r], [i0 + 1, r]]
      : cubicWeights(r, s.cubicA).map((w, k) => [i0 - 1 + k, w]);
    const kept = s.excludeOutside ? taps.filter(([i]) => i >= 0 && i < inLen) : taps;
    const total = s.excludeOutside ? kept.reduce((t, [, w]) => t + w, 0) : 1;
    for (const [i, w] of kept) m[edge(i) * outLen + o] += w / total;
  }
  return m;
}

const isIdentity = (m: Float32Array, n: number) => m.every((v, k) => v === (k % (n + 1) === 0 ? 1 : 0));

/** The input index each output reads, when `m` [inLen, outLen] is a nearest-neighbour selection (one 1 per column). */
function selection(m: Float32Array, inLen: number, outLen: number): number[] | undefined {
  const idx: number[] = [];
  for (let o = 0; o < outLen; o++) {
    let at = -1;
    for (let i = 0; i < inLen; i++) {
      const v = m[i * outLen + o];
      if (v === 1 && at < 0) at = i;
      else if (v !== 0) return undefined;
    }
    if (at < 0) return undefined;
    idx.push(at);
  }
  return idx;
}

/**
 * A nearest-neighbour selection of a regular form, done without the matmul: every step-th element
 * from `start` (downsampling: a strided slice) or each element of a run r times (integer
 * upsampling: a broadcast). Undefined for any other pattern.
 */
function regularSelection(idx: number[]): ((x: Array, axis: number) => Array) | undefined {
  const n = idx.length, start = idx[0], step = n > 1 ? idx[1] - idx[0] : 1;
  if (step >= 1 && idx.every((i, o) => i === start + o * step)) return (x, axis) => sliceAxis(x, axis, start, n, step);
  let r = 1;
  while (r < n && idx[r] === start) r++;
  if (n % r !== 0 || !idx.every((i, o) => i === start + Math.floor(o / r))) return undefined;
  return (x, axis) => {
    const runs = sliceAxis(x, axis, start, n / r, 1), shp = [...runs.shape];
    const one = [...shp.slice(0, axis + 1), 1, ...shp.slice(axis + 1)], up = [...shp.slice(0, axis + 1), r, ...shp.slice(axis + 1)];
    return np.broadcastTo(runs.reshape(one), up).reshape([...shp.slice(0, axis), shp[axis] * r, ...shp.slice(axis + 1)]);
  };
}

/**
 * Resize (opsets 10–19) and Upsample (7–9): nearest, linear and cubic sampling of any axes, each
 * axis a matmul by its constant sampling matrix (differentiable; lowerable), or, for a regular
 * nearest-neighbour pattern (integer up- or downsampling), a broadcast or a strided slice.
 * Output extents from `sizes`, or ⌊extent·scale⌋ from `scales`. Not supported: tf_crop_and_resize
 * and antialiased downsampling (one-line errors).
 */
function resizeOp(upsample: boolean): Op {
  return (c) => {
    const shape = c.shape(0), rank = shape.length;
    const legacy = upsample || c.opset < 11;
    const present = (i: number) => c.has(i) && c.host(i).data.length > 0;
    let mode = c.str("mode", "nearest");
    if (mode === "bilinear" || mode === "trilinear") mode = "linear";
    if (!["nearest", "linear", "cubic"].includes(mode) || (legacy && mode === "cubic")) throw new Error(`mode "${mode}" is not supported`);
    const s: Sampling = {
      mode,
      coord: legacy ? "asymmetric" : c.str("coordinate_transformation_mode", "half_pixel"),
      nearest: legacy ? "simple" : c.str("nearest_mode", "round_prefer_floor"),
      cubicA: c.float("cubic_coeff_a", -0.75),
      excludeOutside: c.int("exclude_outside", 0) === 1,
    };
    if (s.coord === "tf_crop_and_resize") throw new Error(`coordinate_transformation_mode "tf_crop_and_resize" is not supported`);
    const axes = (c.intList("axes") ?? range(rank)).map((a) => normAxis(a, rank));
    const scales = shape.map(() => 1), sizes = [...shape];
    if (!legacy && present(3)) {
      // Target sizes; keep_aspect_ratio_policy (opset 18) may turn them into one scale for all the axes.
      const want = c.ints(3), policy = c.str("keep_aspect_ratio_policy", "stretch");
      if (want.length !== axes.length) throw new Error(`sizes has ${want.length} entries for ${axes.length} axes`);
      if (policy === "stretch") axes.forEach((a, k) => { sizes[a] = want[k]; scales[a] = want[k] / shape[a]; });
      else {
        const ratios = axes.map((a, k) => want[k] / shape[a]);
        const r = policy === "not_larger" ? Math.min(...ratios) : policy === "not_smaller" ? Math.max(...ratios) : NaN;
        if (Number.isNaN(r)) throw new Error(`keep_aspect_ratio_policy "${policy}" is not supported`);
        axes.forEach((a) => { scales[a] = r; sizes[a] = Math.floor(r * shape[a] + 0.5); });
      }
    } else {
      const given = upsample && c.opset < 9 ? c.attr("scales")?.floats : present(legacy ? 1 : 2) ? c.host(legacy ? 1 : 2).data : undefined;
      if (!given) throw new Error("neither scales nor sizes is given");
      if (given.length !== axes.length) throw new Error(`scales has ${given.length} entries for ${axes.length} axes`);
      axes.forEach((a, k) => {
        if (!(given[k] > 0)) throw new Error(`scale ${given[k]} of axis ${a} is not positive`);
        scales[a] = Math.fround(given[k]);
        sizes[a] = Math.floor(Math.fround(shape[a] * scales[a])); // in float32, as onnxruntime: 5 · 1.8 is 9
      });
    }
    if (c.int("antialias", 0) === 1 && mode !== "nearest" && scales.some((r) => r < 1)) {
      throw new Error("antialiased downsampling (antialias = 1 with a scale below 1) is not supported");
    }
    let x = c.x(0);
    for (let a = 0; a < rank; a++) {
      if (sizes[a] < 1) throw new Error(`axis ${a} would be resized to ${sizes[a]} elements`);
      checkedSize([shape[a], sizes[a]], MAX_ARRAY_ELEMENTS / 4, `the sampling matrix of axis ${a}`);
      const m = samplingMatrix(shape[a], sizes[a], scales[a], s);
      if (sizes[a] === shape[a] && isIdentity(m, shape[a])) continue;
      const idx = mode === "nearest" ? selection(m, shape[a], sizes[a]) : undefined;
      const regular = idx && regularSelection(idx);
      x = regular ? regular(x, a) : alongAxis(x, a, m, sizes[a]);
    }
    return arr(x);
  };
}

/** DepthToSpace: [N, C·b², H, W] → [N, C, H·b, W·b]; channels ordered depth-column-row (DCR) or column-row-depth (CRD). */
const DepthToSpace: Op = (c) => {
  const [N, C, H, W] = c.shape(0);
  const b = c.int("blocksize", 0);
  if (!(b > 0) || C % (b * b) !== 0) throw new Error(`blocksize ${b} does not divide the ${C} channels into b² blocks`);
  const D = C / (b * b);
  const y = c.str("mode", "DCR") === "CRD"
    ? c.x(0).reshape([N, D, b, b, H, W]).transpose([0, 1, 4, 2, 5, 3])
    : c.x(0).reshape([N, b, b, D, H, W]).transpose([0, 3, 4, 1, 5, 2]);
  return arr(y.reshape([N, D, H * b, W * b]));
};

/** SpaceToDepth: [N, C, H·b, W·b] → [N, C·b², H, W], the inverse of DepthToSpace in DCR order. */
const SpaceToDepth: Op = (c) => {
  const [N, C, H, W] = c.shape(0);
  const b = c.int("blocksize", 0);
  if (!(b > 0) || H % b !== 0 || W % b !== 0) throw new Error(`blocksize ${b} does not divide [${H}, ${W}]`);
  const y = c.x(0).reshape([N, C, H / b, b, W / b, b]).transpose([0, 3, 5, 1, 2, 4]);
  return arr(y.reshape([N, C * b * b, H / b, W / b]));
};

type Labelled = { a: Array; l: string[] };

/**
 * Einsum in numpy's notation (spaces ignored; "..." and an implicit output allowed): labels in one
 * operand only are summed out first, then the operands are multiplied pairwise as one batched
 * matmul each — [shared and still needed, left only, contracted] × [shared, contracted, right
 * only] — and the result is transposed to the output's order. A label repeated within one
 * operand (a diagonal) is not supported.
 */
const Einsum: Op = (c) => {
  const eq = c.str("equation", "").replace(/\s+/g, "");
  const [lhs, rhs] = eq.split("->");
  const terms = lhs.split(",");
  const n = c.node.inputs.length;
  if (terms.length !== n) throw new Error(`equation "${eq}" has ${terms.length} operands, the node ${n}`);
  // "..." stands for the leading axes not labelled, right-aligned across operands (private labels).
  const free = (t: string) => t.replace("...", "").length;
  const ellRank = Math.max(0, ...terms.map((t, i) => (t.includes("...") ? c.shape(i).length - free(t) : 0)));
  const ell = range(ellRank).map((k) => String.fromCharCode(0x100 + k));
  const labelsOf = (t: string, rank: number): string[] => {
    if (!t.includes("...")) return [...t];
    const [pre, post] = t.split("...");
    return [...pre, ...ell.slice(ellRank - (rank - free(t))), ...post];
  };
  const size = new Map<string, number>();
  const ops: Labelled[] = terms.map((t, i) => {
    const shape = c.shape(i), l = labelsOf(t, shape.length);
    if (l.length !== shape.length) throw new Error(`operand ${i} has rank ${shape.length}, "${t}" labels ${l.length} axes`);
    if (new Set(l).size !== l.length) throw new Error(`a label repeated within operand "${t}" (a diagonal) is not supported`);
    l.forEach((x, a) => {
      const was = size.get(x) ?? 1;
      if (was !== 1 && shape[a] !== 1 && shape[a] !== was) throw new Error(`label ${x.charCodeAt(0) < 0x100 ? x : "..."} has extent ${was} in one operand and ${shape[a]} in operand ${i}`);
      size.set(x, Math.max(was, shape[a]));
    });
    return { a: c.x(i), l };
  });
  const once = [...size.keys()].filter((x) => ops.filter((o) => o.l.includes(x)).length === 1);
  const out = rhs !== undefined
    ? labelsOf(rhs, (rhs.includes("...") ? ellRank : 0) + free(rhs))
    : [...ell, ...once.filter((x) => !ell.includes(x)).sort()];
  for (const o of ops) {
    // Broadcast size-1 axes ("..." broadcasting), then sum out labels no one else needs.
    const full = o.l.map((x) => size.get(x)!);
    if (full.some((d, a) => d !== o.a.shape[a])) o.a = np.broadcastTo(o.a, full);
    const gone = o.l.filter((x) => once.includes(x) && !out.includes(x));
    if (gone.length) {
      o.a = np.sum(o.a, gone.map((x) => o.l.indexOf(x)));
      o.l = o.l.filter((x) => !gone.includes(x));
    }
  }
  const sizes = (ls: string[]) => ls.map((x) => size.get(x)!);
  const arrange = (o: Labelled, order: string[]) => o.a.transpose(order.map((x) => o.l.indexOf(x)));
  while (ops.length > 1) {
    const A = ops.shift()!, B = ops.shift()!;
    const later = new Set([...out, ...ops.flatMap((o) => o.l)]);
    const shared = A.l.filter((x) => B.l.includes(x));
    const batch = shared.filter((x) => later.has(x)), contract = shared.filter((x) => !later.has(x));
    const left = A.l.filter((x) => !B.l.includes(x)), right = B.l.filter((x) => !A.l.includes(x));
    const [nb, nl, nk, nr] = [batch, left, contract, right].map((ls) => prod(sizes(ls)));
    const a = arrange(A, [...batch, ...left, ...contract]).reshape([nb, nl, nk]);
    const b = arrange(B, [...batch, ...contract, ...right]).reshape([nb, nk, nr]);
    const l = [...batch, ...left, ...right];
    ops.unshift({ a: np.matmul(a, b).reshape(sizes(l)), l });
  }
  const [last] = ops;
  const extra = last.l.filter((x) => !out.includes(x));
  if (extra.length) throw new Error(`internal: labels ${extra.join("")} left over`);
  return arr(arrange(last, out));
};

/** Per spatial axis, how many of each output's window taps fall inside the input (for count_include_pad = 0). */
function validTaps(inLen: number, outLen: number, k: number, stride: number, dil: number, lo: number): number[] {
  return range(outLen).map((o) => range(k).filter((j) => {
    const i = o * stride - lo + j * dil;
    return i >= 0 && i < inLen;
  }).length);
}

/**
 * AveragePool / MaxPool: the window taps of the padded input (as in Conv), then
 * their mean or maximum. MaxPool pads with the lowest float, added to a zero pad so that the
 * input's values stay exact. ceil_mode and MaxPool's Indices output are not supported.
 */
function poolOp(kind: "average" | "max"): Op {
  return (c) => {
    const s = c.shape(0), n = s.length - 2;
    const kernel = c.intList("kernel_shape");
    if (!kernel || kernel.length !== n) throw new Error(`kernel_shape must give ${n} extents`);
    if (c.int("ceil_mode", 0) !== 0) throw new Error("ceil_mode 1 is not supported");
    if (c.node.outputs.length > 1 && c.node.outputs[1]) throw new Error("the Indices output is not supported");
    const strides = c.intList("strides") ?? range(n).map(() => 1);
    const dil = c.intList("dilations") ?? range(n).map(() => 1);
    const [lo, hi] = convPads(c, s.slice(2), kernel, strides, dil);
    const padded = s.slice(2).map((d, i) => d + lo[i] + hi[i]);
    const out = range(n).map((i) => Math.floor((padded[i] - dil[i] * (kernel[i] - 1) - 1) / strides[i]) + 1);
    if (out.some((o) => o <= 0)) throw new Error(`output extent [${out}] is empty`);
    let x = c.x(0);
    const widths = [[0, 0], [0, 0], ...range(n).map((i) => [lo[i], hi[i]])] as [number, number][];
    if (lo.some((p) => p > 0) || hi.some((p) => p > 0)) {
      x = np.pad(x, widths);
      if (kind === "max") {
        const inside = np.pad(np.ones([1, 1, ...s.slice(2)]), widths.map((w, a) => (a < 2 ? [0, 0] : w)) as [number, number][]);
        x = x.add(np.equal(inside, 0).astype(np.float32).mul(-3.4028234663852886e38));
      }
    }
    const K = prod(kernel);
    const acc = windowTaps(x, kernel, strides, dil, out).reduce((a, win) => (kind === "max" ? np.maximum(a, win) : a.add(win)));
    if (kind === "max") return arr(acc);
    if (c.int("count_include_pad", 0) === 1) return arr(acc.mul(1 / K));
    // The mean over the taps inside the input: a constant count per output position.
    const counts = range(n).map((i) => validTaps(s[2 + i], out[i], kernel[i], strides[i], dil[i], lo[i]));
    const total = new Float32Array(prod(out)).map((_, f) => {
      let p = 1, rest = f;
      for (let d = n - 1; d >= 0; d--) { p *= counts[d][rest % out[d]]; rest = Math.floor(rest / out[d]); }
      return 1 / p;
    });
    return arr(acc.mul(np.array(total, { shape: [1, 1, ...out] })));
  };
}

const GlobalAveragePool: Op = (c) => arr(np.mean(c.x(0), range(c.shape(0).length).slice(2), { keepdims: true }));
const GlobalMaxPool: Op = (c) => arr(np.max(c.x(0), range(c.shape(0).length).slice(2), { keepdims: true }));

/** CumSum along a constant axis; exclusive (each sum without its own element) and reverse (from the end) attributes. */
const CumSum: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.ints(1)[0], s.length), n = s[axis];
  const exclusive = c.int("exclusive", 0) === 1, reverse = c.int("reverse", 0) === 1;
  // m[i, o] = 1 where input i is summed into output o.
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < n; o++) {
      const take = reverse ? (exclusive ? i > o : i >= o) : (exclusive ? i < o : i <= o);
      if (take) m[i * n + o] = 1;
    }
  }
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s);
    return host(v.dtype, s, range(prod(s)).map((f) => {
      const o = Math.floor(f / st[axis]) % n, base = f - o * st[axis];
      let t = 0;
      for (let i = 0; i < n; i++) if (m[i * n + o]) t += v.data[base + i * st[axis]];
      return t;
    }));
  }
  return arr(alongAxis(c.x(0), axis, m, n));
};

/** Trilu: the upper (upper = 1) or lower triangle of the last two axes, from diagonal k on; the rest 0. */
const Trilu: Op = (c) => {
  const s = c.shape(0), [R, C] = s.slice(-2);
  const k = c.has(1) ? c.ints(1)[0] : 0, upper = c.int("upper", 1) === 1;
  const keep = range(R * C).map((f) => {
    const d = (f % C) - Math.floor(f / C);
    return upper ? d >= k : d <= k;
  });
  const v = c.value(0);
  if (v.kind === "host") return hostMap(v.dtype, [v, host("bool", [R, C], keep.map(Number))], (x, m) => (m ? x : 0));
  return arr(np.where(lift(host("bool", [R, C], keep.map(Number))), c.x(0), 0));
};

// ---------------------------------------------------------------------------------------------
// The op table

const OPS: Record<string, Op> = {
  ...Object.fromEntries(Object.keys(UNARY).map((k) => [k, unaryOp(k)])),
  ...Object.fromEntries(Object.keys(BINARY).map((k) => [k, binaryOp(k)])),
  Pow, Mean, Clip, Mod, Where, Cast, Identity, Dropout, MatMul, Gemm,
  Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat, Split, Slice, Gather, Expand, Tile, Pad,
  Constant, Shape, Size, ConstantOfShape, Range,
  ReduceSum: reduceOp("sum"), ReduceMean: reduceOp("mean"), ReduceMax: reduceOp("max"), ReduceMin: reduceOp("min"),
  ReduceProd: reduceOp("prod"), ReduceSumSquare: reduceOp("sumsquare"), ReduceL2: reduceOp("l2"),
  ReduceL1: reduceOp("l1"), ReduceLogSum: reduceOp("logsum"), ReduceLogSumExp: reduceOp("logsumexp"),
  Softmax: softmaxOp(false), LogSoftmax: softmaxOp(true),
  LayerNormalization, RMSNormalization, InstanceNormalization, GroupNormalization, BatchNormalization,
  Conv, ConvTranspose, PRelu,
  Resize: resizeOp(false), Upsample: resizeOp(true), DepthToSpace, SpaceToDepth, Einsum,
  AveragePool: poolOp("average"), MaxPool: poolOp("max"), GlobalAveragePool, GlobalMaxPool, CumSum, Trilu,
};

/** The ONNX op types `importOnnx` supports (default domain). */
export const SUPPORTED_OPS: readonly string[] = Object.keys(OPS).sort();

/** Input positions an op reads as values known in advance (a float initializer there stays a constant). */
const STATIC_INPUTS: Record<string, number[]> = {
  Reshape: [1], Expand: [1], Tile: [1], Slice: [1, 2, 3, 4], Split: [1], Squeeze: [1], Unsqueeze: [1], Pad: [1, 2, 3],
  ReduceSum: [1], ReduceMean: [1], ReduceMax: [1], ReduceMin: [1], ReduceProd: [1], ReduceSumSquare: [1], ReduceL2: [1],
  ReduceL1: [1], ReduceLogSum: [1], ReduceLogSumExp: [1], Resize: [1, 2, 3], Upsample: [1], CumSum: [1], Trilu: [1],
  ConstantOfShape: [0], Range: [0, 1, 2], Clip: [1, 2], Pow: [1], Dropout: [1, 2], Gather: [1],
};

// ---------------------------------------------------------------------------------------------
// Import

/** Reads `file` (and its external data) and imports it. */
export function importOnnx(source: string | OnnxModel): ImportedOnnx {
  const model = typeof source === "string" ? readOnnxFile(source) : source;
  const { file, graph } = model;
  const opset = model.opsets[""] ?? model.opsets["ai.onnx"] ?? 1;
  const where = `"${file}"`;

  for (const n of graph.nodes) {
    if ((n.domain !== "" || !(n.opType in OPS))) {
      const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
      throw new OnnxImportError(`${where}: unsupported ONNX operator ${op} (node "${n.name || n.outputs[0]}"); supported: ${SUPPORTED_OPS.join(" ")}`);
    }
  }

  // Which initializers are read as data somewhere (→ parameters, when floating).
  const dataUse = new Set<string>();
  for (const n of graph.nodes) {
    const st = STATIC_INPUTS[n.opType] ?? [];
    n.inputs.forEach((name, i) => !st.includes(i) && dataUse.add(name));
  }
  for (const o of graph.outputs) dataUse.add(o.name);
  const params: Record<string, HostTensor> = {};
  const constants = new Map<string, Host>();
  for (const t of graph.initializers) {
    if (isFloat(t.dtype) && dataUse.has(t.name)) params[t.name] = { data: Float32Array.from(t.data), shape: [...t.dims] };
    else constants.set(t.name, tensorValue(t));
  }
  const initNames = new Set(graph.initializers.map((t) => t.name));
  const inputs: OnnxTensorInfo[] = graph.inputs
    .filter((i) => !initNames.has(i.name))
    .map((i) => ({ name: i.name, dtype: i.dtype || "float32", shape: i.shape ?? [] }));
  const outputs: OnnxTensorInfo[] = graph.outputs.map((o) => ({ name: o.name, dtype: o.dtype || "float32", shape: o.shape ?? [] }));
  for (const i of inputs) {
    if (!isFloat(i.dtype) && i.dtype !== "int64" && i.dtype !== "int32" && i.dtype !== "bool") {
      throw new OnnxImportError(`${where}: input "${i.name}" has element type ${i.dtype}, which is not supported`);
    }
  }

  // Uses per value name, so each value is disposed after its last reader.
  const uses = new Map<string, number>();
  const use = (n: string) => n && uses.set(n, (uses.get(n) ?? 0) + 1);
  for (const n of graph.nodes) n.inputs.forEach(use);
  for (const o of graph.outputs) use(o.name);

  const checkInputs = (xs: readonly Array[]) => {
    if (xs.length !== inputs.length) {
      throw new OnnxImportError(`${where}: takes ${inputs.length} inputs (${inputs.map((i) => i.name).join(", ")}), got ${xs.length}`);
    }
    const bound = new Map<string, number>();
    inputs.forEach((spec, k) => {
      const got = xs[k].shape;
      const fmt = (s: readonly OnnxDim[]) => `[${s.map((d) => d ?? "?").join(", ")}]`;
      const bad = got.length !== spec.shape.length || spec.shape.some((d, a) => {
        if (typeof d === "number") return d !== got[a];
        if (typeof d === "string") {
          const b = bound.get(d);
          if (b !== undefined && b !== got[a]) return true;
          bound.set(d, got[a]);
        }
        return false;
      });
      if (bad) throw new OnnxImportError(`${where}: input "${spec.name}" has shape ${fmt(got)}, expected ${fmt(spec.shape)}`);
    });
  };

  const tensorNames = new Set(graph.nodes.flatMap((n) => n.outputs.filter(Boolean)));
  const apply = (ps: Record<string, Array>, xs: readonly Array[], o: ApplyOptions = {}): Array[] => {
    const env = new Map<string, Value>();
    const remaining = new Map(uses);
    const adds = new Map(Object.entries(o.add ?? {}));
    const taps = o.tap ?? [];
    const unknown = [...adds.keys(), ...taps].find((n) => !tensorNames.has(n));
    if (unknown !== undefined) {
      for (const a of adds.values()) a.dispose();
      for (const p of Object.values(ps)) p.dispose();
      for (const x of xs) x.dispose();
      throw new OnnxImportError(`${where}: no node computes a tensor "${unknown}" (a hook needs the name of a node's output)`);
    }
    for (const n of taps) remaining.set(n, (remaining.get(n) ?? 0) + 1);
    const release = (name: string) => {
      const v = env.get(name);
      if (v?.kind === "array") v.a.dispose();
      env.delete(name);
    };
    try {
      checkInputs(xs);
      for (const name of Object.keys(params)) {
        const p = ps[name];
        if (p === undefined) throw new OnnxImportError(`${where}: parameter "${name}" is missing`);
        const want = params[name].shape;
        if (p.shape.length !== want.length || p.shape.some((d, a) => d !== want[a])) {
          throw new OnnxImportError(`${where}: parameter "${name}" has shape [${p.shape}], expected [${want}]`);
        }
        env.set(name, arr(p));
      }
      for (const [name, p] of Object.entries(ps)) if (!(name in params)) p.dispose(); // not a parameter of this graph
      for (const [name, h] of constants) env.set(name, h);
      inputs.forEach((spec, k) => env.set(spec.name, arr(xs[k])));
    } catch (e) {
      for (const p of Object.values(ps)) p.dispose();
      for (const x of xs) x.dispose();
      for (const a of adds.values()) a.dispose();
      throw e;
    }
    for (const name of [...env.keys()]) if (!remaining.get(name)) release(name);

    try {
      for (const n of graph.nodes) {
        const ins = n.inputs.map((name) => {
          if (name === "") return undefined;
          const v = env.get(name);
          if (v === undefined) {
            throw new OnnxImportError(`${where}: node "${n.name || n.outputs[0]}" (${n.opType}): input "${name}" is not computed before it (the graph is not in topological order)`);
          }
          return v;
        });
        let outs: Value[];
        try {
          const r = OPS[n.opType](new Ctx(n, ins, opset));
          outs = globalThis.Array.isArray(r) ? r : [r];
          outs.forEach((v, i) => v.kind === "array" && checkedSize(v.a.shape, MAX_ARRAY_ELEMENTS, `output ${i}`));
        } catch (e) {
          if (e instanceof OnnxImportError) throw e;
          throw new OnnxImportError(`${where}: node "${n.name || n.outputs[0]}" (${n.opType}): ${(e as Error).message.split("\n")[0]}`);
        }
        n.outputs.forEach((name, i) => {
          if (!name) return;
          const v = outs[i];
          if (v === undefined) throw new OnnxImportError(`${where}: node "${n.name}" (${n.opType}) has no output ${i}`);
          // An op may pass an input through (Identity): hold our own reference.
          let value: Value = v.kind === "array" && ins.some((x) => x === v) ? arr(v.a.ref) : v;
          const extra = adds.get(name);
          if (extra !== undefined) {
            adds.delete(name);
            value = arr((value.kind === "host" ? lift(value) : value.a).add(extra));
          }
          env.set(name, value);
          if (!remaining.get(name)) release(name);
        });
        for (const name of n.inputs) {
          if (!name) continue;
          const left = (remaining.get(name) ?? 0) - 1;
          remaining.set(name, left);
          if (left <= 0) release(name);
        }
        // Outputs the op returned beyond the node's outputs are dropped.
        outs.slice(n.outputs.length).forEach((v) => v.kind === "array" && v.a.dispose());
      }
      return [...outputs.map((t) => t.name), ...taps].map((name) => {
        const v = env.get(name);
        if (v === undefined) throw new OnnxImportError(`${where}: output "${name}" is never computed`);
        return v.kind === "host" ? lift(v) : v.a.ref;
      });
    } finally {
      for (const name of [...env.keys()]) release(name);
      for (const a of adds.values()) a.dispose(); // not reached (an error before its node)
    }
  };

  return {
    file,
    params,
    inputs,
    outputs,
    paramArrays: () => Object.fromEntries(Object.entries(params).map(([k, t]) => [k, np.array(t.data, { shape: [...t.shape] })])),
    apply,
    tensorNames,
  };
}
