/**
 * What the ONNX importer computes with: values (host values — JS numbers known without running
 * the model — or jax-js arrays), the host helpers that fold shape arithmetic, and `Ctx`, how an op
 * reads a node's inputs and attributes. The ops are in ops/, the import in graph.ts.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import type { OnnxNode } from "./reader.ts";
import { broadcastShapes } from "../numerics/shapes.ts";

// ---------------------------------------------------------------------------------------------
// Values

export type Host = { readonly kind: "host"; readonly dtype: string; readonly shape: readonly number[]; readonly data: number[] };
export type Traced = { readonly kind: "array"; readonly a: Array };
export type Value = Host | Traced;

/**
 * The largest value a graph may compute: 2²⁴ elements on the host (JS numbers, shape arithmetic and
 * constants), 2³² in an array (16 GiB of float32; a real VAE decoder's largest activation at 512² is ≈ 2²⁵). A
 * hostile or mistaken shape (ConstantOfShape of [10⁹], an Expand to [10⁵, 10⁵, 4]) is then a
 * one-line error naming the node, not an out-of-memory abort.
 */
export const MAX_HOST_ELEMENTS = 1 << 24;
export const MAX_ARRAY_ELEMENTS = 2 ** 32;

/** prod(shape), refused past `max` (before anything of that size is allocated). */
export function checkedSize(shape: readonly number[], max: number, what: string): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!(n <= max)) throw new Error(`${what} of shape [${shape}] (${n} elements) is larger than the ${max} supported`);
  return n;
}

const FLOATS = new Set(["float32", "float16", "bfloat16", "float64"]);
export const isFloat = (dtype: string) => FLOATS.has(dtype);
export const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
export const range = (n: number) => globalThis.Array.from({ length: n }, (_, i) => i);

/** Host value; floats are rounded to float32 (what onnxruntime computes in). */
export function host(dtype: string, shape: readonly number[], data: ArrayLike<number>): Host {
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
export function lift(h: Host): Array {
  const shape = [...h.shape];
  if (h.dtype === "float32") return np.array(Float32Array.from(h.data), { shape });
  const ints = np.array(Int32Array.from(h.data, (x) => Math.max(-2147483648, Math.min(2147483647, x))), { shape, dtype: "int32" as never });
  return h.dtype === "bool" ? np.notEqual(ints, 0) : ints;
}

export function strides(shape: readonly number[]): number[] {
  const s = shape.map(() => 1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Host tensor of `shape` whose element at multi-index `idx` is source element `src(idx)`. */
export function hostGen(h: Host, shape: readonly number[], src: (idx: number[]) => number): Host {
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
export function broadcastIndex(shape: readonly number[], st: readonly number[], idx: readonly number[]): number {
  const off = idx.length - shape.length;
  let f = 0;
  for (let a = 0; a < shape.length; a++) if (shape[a] !== 1) f += idx[a + off] * st[a];
  return f;
}

/** Elementwise n-ary op on host values with broadcasting. */
export function hostMap(dtype: string, xs: Host[], fn: (...v: number[]) => number): Host {
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

export const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);

// ---------------------------------------------------------------------------------------------
// Node context: how an op reads its inputs and attributes

/**
 * Which executor runs the programs built on an imported graph: "onnx" (lowered to ONNX Runtime;
 * the default) or "jax" (jax-js's own backend). Ops whose fastest form differs between them (Conv)
 * choose by it; the values are the same.
 */
export type ImportTarget = "onnx" | "jax";

export class Ctx {
  constructor(readonly node: OnnxNode, readonly ins: (Value | undefined)[], readonly opset: number, readonly target: ImportTarget = "onnx") {}

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

export type Op = (c: Ctx) => Value | Value[];

export const arr = (a: Array): Traced => ({ kind: "array", a });
