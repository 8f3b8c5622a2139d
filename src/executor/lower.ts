/**
 * Lowering of jax-js programs (the `ClosedJaxpr` of `makeJaxpr(f)(...args)`) to ONNX (opset 17,
 * default domain only), for ONNX Runtime (spec fast-paths §1).
 *
 * Every jaxpr variable becomes a *view* of an ONNX tensor:
 * - its physical shape has the variable's rank, and each axis is either the logical extent or 1;
 *   an axis of physical extent 1 and larger logical extent is a virtual broadcast. `broadcast`
 *   never materialises (no Expand), and consumers use ONNX's multidirectional broadcasting; only
 *   a consumer that needs the full extent (concatenate, a reshape mixing broadcast and real axes,
 *   a graph output) expands.
 * - its axes of extent > 1 map one-to-one, possibly permuted, onto the axes of extent > 1 of a base
 *   tensor. `transpose`, `reshape`s that only insert or drop unit axes, and `broadcast` are pure
 *   bookkeeping; elementwise unary ops and reductions run on the base. A Transpose is emitted only
 *   when an operand must be laid out in a given order, and `dot` picks the MatMul operand layouts
 *   (with a last-two-axes Transpose that ONNX Runtime fuses into MatMul) that avoid one.
 * - a value known to be zero (an all-zero constant, e.g. a zero tangent jax-js materialises for
 *   closed-over parameters, or a product with one) is folded away at translation time.
 *
 * `dot` is jax-js's `sum(x*y, axis=-1)` with numpy broadcasting; its axes are classified from the
 * physical shapes (batch: both operands > 1; M: only x; N: only y; virtual: neither) and it becomes
 * one MatMul. Nested `jit` eqns (silu and its jvp/transpose forms, user jits) are inlined.
 */
import { makeJaxpr, type ClosedJaxpr, type Jaxpr, type JsTreeDef } from "@jax-js/jax";
import { biasNextToMatMul, fuseNormsAndActivations, quantizeMatMuls } from "./inferenceGraph.ts";
import { broadcastShapes } from "../numerics/shapes.ts";
import {
  type Attribute, type NodeProto, type TensorProto, type DataTypeCode, DataType,
  attrInt, attrInts, encodeModel, float32Tensor, int64Tensor, int32Tensor, uint32Tensor, boolTensor,
} from "./onnxProto.ts";

type Var = Jaxpr["inBinders"][number];
type Atom = Jaxpr["outs"][number];
type Eqn = Jaxpr["eqns"][number];
type Lit = Exclude<Atom, Var>;

/** Element types the lowering handles. */
export type ElemType = "float32" | "int32" | "uint32" | "bool";

export type TensorSpec = { readonly name: string; readonly shape: readonly number[]; readonly dtype: ElemType };

export type LoweredProgram = {
  /** Serialised ONNX ModelProto. */
  readonly model: Uint8Array;
  /** Graph inputs, in the order of the jaxpr's (non-constant) inputs. */
  readonly inputs: readonly TensorSpec[];
  /** Graph outputs, in the order of the jaxpr's outputs (the flattened output tree). */
  readonly outputs: readonly TensorSpec[];
  /** Number of ONNX nodes of each op type. */
  readonly opCounts: Readonly<Record<string, number>>;
  /** Floating-point operations of the program's matrix products (2·M·N·K each), for GFLOP/s. */
  readonly matmulFlops: number;
};

export type LowerOptions = {
  readonly name?: string;
  /** Names of the graph inputs, in order (default `in_0`, `in_1`, …). */
  readonly inputNames?: readonly string[];
  /** Names of the graph outputs, in order (default `out_0`, `out_1`, …). */
  readonly outputNames?: readonly string[];
  /**
   * An inference-only file (`tbcm export`): bias adds moved next to their matrix products and,
   * with `int8`, matrix products by constant weights dynamically quantized (inferenceGraph.ts).
   */
  readonly inference?: { readonly int8: boolean };
  /**
   * A symbolic leading batch axis (a file for other batch sizes than the one traced): the program
   * was traced at batch `size` (pick a size no other axis has); Reshape shapes starting with it
   * (or a multiple of it; else the only entry that is a multiple of it) get −1 there, Expand shapes with 1, and graph inputs and outputs whose first dim is
   * `size` get the dim `name`. Only for programs whose batch-dependent tensors carry the batch
   * first (check the file at another batch size).
   */
  readonly batch?: { readonly size: number; readonly name: string };
  /**
   * Graph inputs (by name) declared with another element type than they are traced with, so that
   * the file keeps a contract (a teacher's int64 attention mask, traced as float32): each is cast
   * to its traced type first.
   */
  readonly inputTypes?: Readonly<Record<string, DeclaredType>>;
  /** Graph outputs (by name) declared with another element type than computed (a float16 teacher's output): cast last. */
  readonly outputTypes?: Readonly<Record<string, DeclaredType>>;
  /**
   * Outputs (by name) that are not graph outputs but name the tensor they are computed in, so
   * that the file can be hooked there (importOnnx's `add`): e.g. a DiT's time embedding.
   */
  readonly namedTensors?: readonly string[];
  /**
   * Names of the initializers of closed-over arrays (by identity: e.g. a model's parameter
   * leaves), so that a file's weights carry their model names; each is an initializer even when
   * all zero. Other constants are named `init_…` / `const_…`.
   */
  readonly constNames?: ReadonlyMap<unknown, string>;
};

/** The primitive of a jaxpr eqn that the lowering does not translate. */
export class UnsupportedPrimitiveError extends Error {
  constructor(readonly primitive: string, detail: string) {
    super(`ONNX lowering: unsupported jax-js primitive "${primitive}" (${detail}). Supported: ${SUPPORTED.join(", ")}.`);
    this.name = "UnsupportedPrimitiveError";
  }
}

const ONNX_TYPE: Record<ElemType, DataTypeCode> = {
  float32: DataType.FLOAT,
  int32: DataType.INT32,
  uint32: DataType.UINT32,
  bool: DataType.BOOL,
};

/** A jaxpr value as a view of an ONNX tensor (see the file comment). */
type Val = {
  readonly dtype: ElemType;
  /** The jaxpr shape. */
  readonly logical: readonly number[];
  /** Physical shape: same rank; each axis is the logical extent or 1. */
  readonly shape: readonly number[];
  /** Known to be all zeros (then `base` is unused and `shape` is all ones). */
  readonly zero: boolean;
  readonly base: string;
  readonly baseShape: readonly number[];
  /** For each axis: the base axis it is (when its physical extent is > 1), else -1. */
  readonly map: readonly number[];
  /** Name of a tensor of exactly `shape` holding this value, once emitted. */
  materialised?: string;
};

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const increasing = (xs: readonly number[]) => xs.every((x, i) => i === 0 || xs[i - 1] < x);
const range = (n: number) => globalThis.Array.from({ length: n }, (_, i) => i);
const isVar = (a: Atom): a is Var => "id" in a;


/** Element types a graph input or output may be declared with besides its traced one (`inputTypes`, `outputTypes`). */
export const DECLARED_TYPES = ["int64", "int32", "bool", "float16"] as const;
export type DeclaredType = (typeof DECLARED_TYPES)[number];
const DECLARED_TYPE: Record<DeclaredType, DataTypeCode> = { int64: DataType.INT64, int32: DataType.INT32, bool: DataType.BOOL, float16: DataType.FLOAT16 };

const DTYPE_ORDER: ElemType[] = ["bool", "uint32", "int32", "float32"];

function elemType(dtype: string, what: string): ElemType {
  if (dtype === "float32" || dtype === "int32" || dtype === "uint32" || dtype === "bool") return dtype;
  throw new Error(`ONNX lowering: dtype ${dtype} of ${what} is not supported (float32, int32, uint32, bool are)`);
}

const SUPPORTED = [
  "add", "mul", "idiv", "mod", "min", "max", "neg", "reciprocal", "floor", "ceil", "stop_gradient", "cast",
  "sin", "cos", "asin", "atan", "exp", "log", "erf", "erfc", "sqrt", "reduce", "dot", "compare", "where",
  "concatenate", "split", "transpose", "broadcast", "reshape", "flip", "shrink", "pad", "jit",
];

const UNARY_OP: Record<string, string> = {
  neg: "Neg", reciprocal: "Reciprocal", floor: "Floor", ceil: "Ceil", sin: "Sin", cos: "Cos", asin: "Asin",
  atan: "Atan", exp: "Exp", log: "Log", erf: "Erf", sqrt: "Sqrt",
};
/** Unary ops with f(0) = 0, which keep a known-zero value zero. */
const ZERO_PRESERVING = new Set(["neg", "floor", "ceil", "sin", "asin", "atan", "erf", "sqrt", "stop_gradient"]);
const BINARY_OP: Record<string, string> = { add: "Add", mul: "Mul", min: "Min", max: "Max", idiv: "Div", mod: "Mod" };
const BOOL_BINARY_OP: Record<string, string> = { add: "Or", max: "Or", mul: "And", min: "And" };

/**
 * Graph input or output names: given ones (checked: as many as needed, none of the form of the
 * lowering's own value names, `<letters>_<number>`), else `<prefix>_<i>`.
 */
function graphNames(given: readonly string[] | undefined, count: number, prefix: string, what: string): (i: number) => string {
  if (given === undefined) return (i) => `${prefix}_${i}`;
  if (given.length !== count) throw new Error(`ONNX lowering: ${given.length} names given for ${count} graph ${what}`);
  for (const n of given) {
    if (n === "" || /^[a-z]+_[0-9]+$/.test(n)) throw new Error(`ONNX lowering: graph ${what} name "${n}" is empty or may clash with internal names`);
  }
  return (i) => given[i];
}

class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly #constCache = new Map<string, string>();
  #next = 0;

  fresh(prefix: string): string {
    return `${prefix}_${this.#next++}`;
  }

  node(opType: string, inputs: readonly string[], attributes: readonly Attribute[] = [], outputs = 1): string[] {
    const outs = range(outputs).map(() => this.fresh(opType.toLowerCase()));
    this.nodes.push({ opType, inputs, outputs: outs, name: this.fresh("n"), attributes });
    return outs;
  }

  node1(opType: string, inputs: readonly string[], attributes: readonly Attribute[] = []): string {
    return this.node(opType, inputs, attributes)[0];
  }

  /** A cached constant. */
  constant(dtype: ElemType | "int64", dims: readonly number[], values: readonly number[]): string {
    const key = `${dtype}|${dims}|${values}`;
    const hit = this.#constCache.get(key);
    if (hit !== undefined) return hit;
    const name = this.fresh("const");
    this.initializers.push(makeTensor(name, dtype, dims, values));
    this.#constCache.set(key, name);
    return name;
  }

  int64s(values: readonly number[]): string {
    return this.constant("int64", [values.length], values);
  }

  addInitializer(dtype: ElemType, dims: readonly number[], values: ArrayLike<number>, given?: string): string {
    const name = given ?? this.fresh("init");
    this.initializers.push(makeTensor(name, dtype, dims, values));
    return name;
  }
}

function makeTensor(name: string, dtype: ElemType | "int64", dims: readonly number[], values: ArrayLike<number>): TensorProto {
  switch (dtype) {
    case "float32": return float32Tensor(name, dims, values);
    case "int32": return int32Tensor(name, dims, values);
    case "uint32": return uint32Tensor(name, dims, values);
    case "bool": return boolTensor(name, dims, values);
    case "int64": return int64Tensor(name, dims, globalThis.Array.from(values));
  }
}

/** Lowers a closed jaxpr to an ONNX model. Its constants are read (not consumed). */
export function lowerJaxpr(closed: ClosedJaxpr, options: LowerOptions = {}): LoweredProgram {
  return new Lowering().run(closed, options);
}

/**
 * Traces `f` at the shapes of `args` (arrays, or any `{ shape, dtype }` objects that are not plain
 * objects — see `avalSpec`) and lowers it. The traced constants are disposed afterwards.
 */
export function lowerFunction<A extends unknown[]>(
  f: (...args: A) => unknown,
  args: A,
  options: LowerOptions = {},
): LoweredProgram & { treedef: JsTreeDef } {
  const trace = makeJaxpr(f as never) as unknown as (...a: unknown[]) => ReturnType<ReturnType<typeof makeJaxpr>>;
  const traced = trace(...args);
  try {
    return { ...lowerJaxpr(traced.jaxpr, { ...options, name: options.name ?? (f.name || "jaxjs") }), treedef: traced.treedef };
  } finally {
    traced.jaxpr.dispose();
  }
}

/**
 * An abstract value to trace with (makeJaxpr reads only `shape`, `dtype`, `weakType`; a class
 * instance is a pytree leaf, a plain object would not be).
 */
export class AvalSpec {
  readonly weakType = false;
  constructor(readonly shape: readonly number[], readonly dtype: ElemType = "float32") {}
}

export function avalSpec(shape: readonly number[], dtype: ElemType = "float32"): AvalSpec {
  return new AvalSpec(shape, dtype);
}

class Lowering {
  readonly g = new GraphBuilder();
  matmulFlops = 0;
  batchSize?: number;

  run(closed: ClosedJaxpr, options: LowerOptions): LoweredProgram {
    this.batchSize = options.batch?.size;
    const { jaxpr, consts } = closed;
    const env = new Map<Var, Val>();
    const nConsts = consts.length;
    const inputName = graphNames(options.inputNames, jaxpr.inBinders.length - nConsts, "in", "inputs");
    const outputName = graphNames(options.outputNames, jaxpr.outs.length, "out", "outputs");
    const taken = new Set<string>();
    for (const n of [...range(jaxpr.inBinders.length - nConsts).map(inputName), ...range(jaxpr.outs.length).map(outputName)]) {
      if (taken.has(n)) throw new Error(`ONNX lowering: graph input/output name "${n}" is used twice`);
      taken.add(n);
    }
    consts.forEach((c, i) => env.set(jaxpr.inBinders[i], this.constVal(c as unknown as ConstArray, options.constNames?.get(c))));
    const declared = options.inputTypes ?? {};
    const inputs: TensorSpec[] = jaxpr.inBinders.slice(nConsts).map((v, i) => {
      const spec = { name: inputName(i), shape: [...v.aval.shape], dtype: elemType(v.aval.dtype, `input ${i}`) };
      const cast = Object.hasOwn(declared, spec.name) ? this.g.node1("Cast", [spec.name], [attrInt("to", ONNX_TYPE[spec.dtype])]) : spec.name;
      env.set(v, this.dense(cast, spec.shape, spec.dtype, spec.shape));
      return spec;
    });
    this.lowerEqns(jaxpr.eqns, env);
    const hidden = new Set(options.namedTensors ?? []);
    const outputs: TensorSpec[] = jaxpr.outs.map((atom, i) => {
      const v = this.read(env, atom);
      const full = this.expandTo(v, v.logical);
      const spec = { name: outputName(i), shape: [...v.logical], dtype: v.dtype };
      const declaredOut = options.outputTypes?.[spec.name];
      if (declaredOut !== undefined) {
        this.g.nodes.push({ opType: "Cast", inputs: [full], outputs: [spec.name], name: this.g.fresh("n"), attributes: [attrInt("to", DECLARED_TYPE[declaredOut])] });
      } else if (hidden.has(spec.name)) {
        // rename the tensor itself (no Identity): hooks on the name reach its consumers
        if (!this.g.nodes.some((n) => n.outputs.includes(full))) throw new Error(`ONNX lowering: named tensor "${spec.name}" is not computed by a node`);
        const nodes = this.g.nodes.map((n) => ({ ...n, inputs: n.inputs.map((x) => (x === full ? spec.name : x)), outputs: n.outputs.map((x) => (x === full ? spec.name : x)) }));
        this.g.nodes.splice(0, this.g.nodes.length, ...nodes);
      } else this.g.nodes.push({ opType: "Identity", inputs: [full], outputs: [spec.name], name: this.g.fresh("n") });
      return spec;
    }).filter((spec) => !hidden.has(spec.name));
    let { nodes, initializers } = liveGraph(this.g.nodes, this.g.initializers, outputs.map((o) => o.name));
    if (options.inference) {
      ({ nodes, initializers } = fuseNormsAndActivations(biasNextToMatMul({ nodes, initializers })));
      ({ nodes, initializers } = liveGraph(nodes, initializers, outputs.map((o) => o.name)));
      if (options.inference.int8) ({ nodes, initializers } = quantizeMatMuls({ nodes, initializers }));
    }
    const opCounts: Record<string, number> = {};
    for (const n of nodes) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
    const model = encodeModel({
      graph: {
        name: options.name ?? "jaxjs",
        nodes,
        initializers,
        inputs: inputs.map((s) => ({ name: s.name, elemType: Object.hasOwn(declared, s.name) ? DECLARED_TYPE[declared[s.name]] : ONNX_TYPE[s.dtype], shape: this.symbolic(s.shape, options) })),
        outputs: outputs.map((s) => ({ name: s.name, elemType: options.outputTypes?.[s.name] ? DECLARED_TYPE[options.outputTypes[s.name]] : ONNX_TYPE[s.dtype], shape: this.symbolic(s.shape, options) })),
      },
    });
    return { model, inputs, outputs, opCounts, matmulFlops: this.matmulFlops };
  }

  // -------------------------------------------------------------------------------------------
  // Values

  dense(name: string, shape: readonly number[], dtype: ElemType, logical: readonly number[]): Val {
    return {
      dtype, logical, shape, zero: false, base: name, baseShape: shape,
      map: shape.map((d, i) => (d > 1 ? i : -1)), materialised: name,
    };
  }

  zeroVal(dtype: ElemType, logical: readonly number[]): Val {
    const ones = logical.map(() => 1);
    return { dtype, logical, shape: ones, zero: true, base: "", baseShape: ones, map: ones.map(() => -1) };
  }

  constVal(c: ConstArray, name?: string): Val {
    const dtype = elemType(c.dtype, "a traced constant");
    const data = c.ref.dataSync();
    const shape = [...c.shape];
    if (name === undefined && data.every((x) => x === 0)) return this.zeroVal(dtype, shape);
    const b = this.batchSize;
    if (name === undefined && b !== undefined && shape[0] === b && b > 1) {
      // a constant over the symbolic batch whose rows are equal (e.g. ones shaped like an input): one row, broadcast
      const row = data.length / b;
      const values = globalThis.Array.from(data as ArrayLike<number>);
      if (values.every((x, i) => x === values[i % row])) {
        const one = [1, ...shape.slice(1)];
        return this.dense(this.g.addInitializer(dtype, one, values.slice(0, row)), one, dtype, shape);
      }
    }
    return this.dense(this.g.addInitializer(dtype, shape, data, name), shape, dtype, shape);
  }

  litVal(l: Lit, dtype: ElemType = elemType(l.aval.dtype, "a literal")): Val {
    if (l.value === 0) return this.zeroVal(dtype, []);
    return this.dense(this.g.constant(dtype, [], [l.value]), [], dtype, []);
  }

  read(env: Map<Var, Val>, atom: Atom, dtype?: ElemType): Val {
    if (!isVar(atom)) return this.litVal(atom, dtype);
    const v = env.get(atom);
    if (v === undefined) throw new Error(`ONNX lowering: internal: unbound variable ${atom.toString()}`);
    return v;
  }

  /** A tensor name holding exactly `v.shape`. */
  materialise(v: Val): string {
    if (v.materialised !== undefined) return v.materialised;
    let name: string;
    if (v.zero) {
      name = this.g.constant(v.dtype, v.shape, [0]); // shape is all ones
    } else {
      const order = v.map.filter((a) => a >= 0);
      if (increasing(order)) {
        name = this.reshape(v.base, v.baseShape, v.shape);
      } else {
        const rest = range(v.baseShape.length).filter((a) => !order.includes(a));
        const perm = [...order, ...rest];
        const t = this.g.node1("Transpose", [v.base], [attrInts("perm", perm)]);
        name = this.reshape(t, perm.map((a) => v.baseShape[a]), v.shape);
      }
    }
    v.materialised = name;
    return name;
  }

  /** A graph input's or output's dims with the symbolic batch (`LowerOptions.batch`). */
  symbolic(shape: readonly number[], options: LowerOptions): (number | string)[] {
    return shape.map((d, i) => (i === 0 && options.batch && d === options.batch.size ? options.batch.name : d));
  }

  /**
   * A shape constant; with a symbolic batch, a leading batch entry becomes `batchEntry` (a
   * Reshape's −1 also replaces a leading multiple of the batch: rows of batch × tokens).
   */
  shapeConst(shape: readonly number[], batchEntry: number): string {
    const b = this.batchSize;
    if (b === undefined || shape.length === 0) return this.g.int64s(shape);
    if (batchEntry !== -1) return this.g.int64s(shape[0] === b ? [batchEntry, ...shape.slice(1)] : shape);
    // Reshape: the entry that holds the batch factor (the leading one, or the only multiple of the batch) is inferred
    const multiples = shape.flatMap((d, i) => (d > 0 && d % b === 0 ? [i] : []));
    const at = shape[0] % b === 0 && shape[0] > 0 ? 0 : multiples.length === 1 ? multiples[0] : -1;
    return this.g.int64s(at < 0 ? shape : shape.map((d, i) => (i === at ? -1 : d)));
  }

  reshape(name: string, from: readonly number[], to: readonly number[]): string {
    if (same(from, to)) return name;
    return this.g.node1("Reshape", [name, this.shapeConst(to, -1)]);
  }

  /** A tensor of `target` (physical) shape, broadcast from `v` (target must be ≥ v's shape). */
  expandTo(v: Val, target: readonly number[]): string {
    const m = this.materialise(v);
    if (same(v.shape, target)) return m;
    return this.g.node1("Expand", [m, this.shapeConst(target, 1)]);
  }

  /** The same value with the physical extent raised to the logical one on `axes`. */
  expandAxes(v: Val, axes: readonly number[]): Val {
    const target = v.shape.map((d, i) => (axes.includes(i) ? v.logical[i] : d));
    if (same(target, v.shape)) return v;
    return this.dense(this.expandTo(v, target), target, v.dtype, v.logical);
  }

  /** A new value on the same base (a view op), shape/map/logical replaced. */
  view(v: Val, shape: readonly number[], map: readonly number[], logical: readonly number[]): Val {
    if (v.zero) return this.zeroVal(v.dtype, logical);
    return { dtype: v.dtype, logical, shape, zero: false, base: v.base, baseShape: v.baseShape, map };
  }

  /** Elementwise op on the base: keeps the view. */
  onBase(v: Val, opType: string, attrs: readonly Attribute[] = [], extraInputs: readonly string[] = [], dtype = v.dtype): Val {
    const base = this.g.node1(opType, [v.base, ...extraInputs], attrs);
    return { dtype, logical: v.logical, shape: v.shape, zero: false, base, baseShape: v.baseShape, map: v.map };
  }

  /** Multiplies by a constant scalar. */
  scale(v: Val, factor: number): Val {
    if (factor === 1 || v.zero) return v;
    return this.onBase(v, "Mul", [], [this.g.constant(v.dtype, [], [factor])]);
  }

  cast(v: Val, dtype: ElemType): Val {
    if (v.dtype === dtype) return v;
    if (v.zero) return this.zeroVal(dtype, v.logical);
    return this.onBase(v, "Cast", [attrInt("to", ONNX_TYPE[dtype])], [], dtype);
  }

  /** Prepends unit axes up to `rank` (a view op). */
  alignRank(v: Val, rank: number): Val {
    const k = rank - v.shape.length;
    if (k <= 0) return v;
    const ones = range(k).map(() => 1);
    return this.view(v, [...ones, ...v.shape], [...ones.map(() => -1), ...v.map], [...ones, ...v.logical]);
  }

  // -------------------------------------------------------------------------------------------
  // Eqns

  lowerEqns(eqns: readonly Eqn[], env: Map<Var, Val>): void {
    for (const eqn of eqns) {
      const outs = this.lowerEqn(eqn, env);
      eqn.outBinders.forEach((b, i) => env.set(b, outs[i]));
    }
  }

  lowerEqn(eqn: Eqn, env: Map<Var, Val>): Val[] {
    const p = eqn.primitive as string;
    const params = eqn.params;
    const outAval = eqn.outBinders[0]?.aval;
    const outLogical = outAval ? [...outAval.shape] : [];
    const outType = () => elemType(outAval!.dtype, `the output of ${p}`);
    const read = (i: number, dtype?: ElemType) => this.read(env, eqn.inputs[i], dtype);

    if (Object.hasOwn(BINARY_OP, p)) {
      const dtype = outType();
      if ((p === "idiv" || p === "mod") && dtype === "float32") {
        throw new UnsupportedPrimitiveError(p, "float operands; only integer idiv/mod are lowered");
      }
      return [this.binary(p, read(0, dtype), read(1, dtype), dtype, outLogical)];
    }
    if (Object.hasOwn(UNARY_OP, p) || p === "stop_gradient") {
      const x = read(0);
      if (x.zero && ZERO_PRESERVING.has(p)) return [x];
      if (p === "stop_gradient") return [x];
      if (x.zero) return [this.onBase(this.dense(this.materialise(x), x.shape, x.dtype, x.logical), UNARY_OP[p])];
      return [this.onBase(x, UNARY_OP[p])];
    }
    switch (p) {
      case "erfc": {
        const x = read(0);
        const xm = x.zero ? this.dense(this.materialise(x), x.shape, x.dtype, x.logical) : x;
        const erf = this.onBase(xm, "Erf");
        const one = this.g.constant(x.dtype, [], [1]);
        return [{ ...erf, base: this.g.node1("Sub", [one, erf.base]), materialised: undefined }];
      }
      case "cast":
        return [this.cast(read(0), elemType(params.dtype, "a cast target"))];
      case "reduce":
        return [this.reduce(read(0), params.op as string, params.axis as number[], false)];
      case "dot":
        return [this.dot(read(0), read(1), outType(), outLogical)];
      case "compare":
        return [this.compare(eqn, env, params.op as string, outLogical)];
      case "where": {
        const dtype = outType();
        const [c, x, y] = [read(0, "bool"), read(1, dtype), read(2, dtype)];
        if (x.zero && y.zero) return [this.zeroVal(dtype, outLogical)];
        const ins = [c, this.cast(x, dtype), this.cast(y, dtype)];
        const shape = broadcastShapes(...ins.map((v) => v.shape));
        return [this.dense(this.g.node1("Where", ins.map((v) => this.materialise(v))), shape, dtype, outLogical)];
      }
      case "transpose": {
        const x = read(0);
        const perm = params.perm as number[];
        return [this.view(x, perm.map((a) => x.shape[a]), perm.map((a) => x.map[a]), outLogical)];
      }
      case "broadcast":
        return [this.broadcast(read(0), params.axis as number[], outLogical)];
      case "reshape":
        return [this.reshapeVal(read(0), outLogical)];
      case "concatenate":
        return [this.concatenate(eqn.inputs.map((_, i) => read(i, outType())), params.axis as number, outType(), outLogical)];
      case "split":
        return this.split(read(0), params.axis as number, params.sizes as number[]);
      case "shrink":
        return [this.shrink(read(0), params.slice as [number, number][], outLogical)];
      case "pad":
        return [this.pad(read(0), params.width as [number, number][], outLogical)];
      case "flip":
        return [this.flip(read(0), params.axis as number[])];
      case "conv":
        return [this.conv(read(0), read(1), params as unknown as ConvParams, outType(), outLogical)];
      case "jit": {
        const inner = params.jaxpr as Jaxpr;
        const innerEnv = new Map<Var, Val>();
        inner.inBinders.forEach((b, i) => innerEnv.set(b, read(i)));
        this.lowerEqns(inner.eqns, innerEnv);
        return inner.outs.map((o) => this.read(innerEnv, o));
      }
      default: {
        const shapes = eqn.inputs.map((a) => `[${a.aval.shape}]`).join(", ");
        throw new UnsupportedPrimitiveError(p, `inputs ${shapes}, params ${describeParams(params)}`);
      }
    }
  }

  binary(p: string, a: Val, b: Val, dtype: ElemType, logical: readonly number[]): Val {
    if (dtype === "bool" && BOOL_BINARY_OP[p] !== undefined) {
      // logical or/and as max/min of 0/1 floats (exact): GPU providers have no bool Or/And kernels,
      // and a node they cannot run is left to the CPU, with copies around it at every step
      const float = this.binary(BOOL_BINARY_OP[p] === "Or" ? "max" : "min", this.cast(a, "float32"), this.cast(b, "float32"), "float32", logical);
      return this.cast(float, "bool");
    }
    const rank = logical.length;
    if (p === "add") {
      if (a.zero && b.zero) return this.zeroVal(dtype, logical);
      // x + 0: x itself, when x already has the output's logical shape (else broadcast is needed).
      if (b.zero && same(a.logical, logical) && a.dtype === dtype) return a;
      if (a.zero && same(b.logical, logical) && b.dtype === dtype) return b;
      if (b.zero) return this.broadcastLike(this.alignRank(this.cast(a, dtype), rank), logical);
      if (a.zero) return this.broadcastLike(this.alignRank(this.cast(b, dtype), rank), logical);
    }
    if (p === "mul" && (a.zero || b.zero)) return this.zeroVal(dtype, logical);
    const [x, y] = [this.cast(a, dtype), this.cast(b, dtype)];
    const shape = broadcastShapes(x.shape, y.shape);
    const attrs = p === "mod" ? [attrInt("fmod", 1)] : [];
    // On bool, jax-js's add/max are logical or and mul/min logical and (np.logicalOr/And, isfinite).
    const op = dtype === "bool" ? BOOL_BINARY_OP[p] : BINARY_OP[p];
    if (op === undefined) throw new UnsupportedPrimitiveError(p, "bool operands");
    const ins = [x, y].map((v) => this.materialise(v));
    // ONNX Runtime's broadcasting walks the innermost axis in spans: with a trailing axis of 1
    // (keepdims reductions, e.g. [B, H, T, 1] + ε) every span is one element, ~5× slower than
    // the same op on the flat tensor. Same-shape-or-scalar operands are flattened for it.
    const n = prod(shape);
    if (shape.length > 1 && shape.at(-1) === 1 && n > 1 && [x, y].every((v) => same(v.shape, shape) || prod(v.shape) === 1)) {
      const flat = ins.map((name, i) => {
        const vs = [x, y][i].shape;
        return prod(vs) === 1 ? this.reshape(name, vs, []) : this.reshape(name, vs, [n]);
      });
      return this.dense(this.reshape(this.g.node1(op, flat, attrs), [n], shape), shape, dtype, logical);
    }
    return this.dense(this.g.node1(op, ins, attrs), shape, dtype, logical);
  }

  /** `v` (already of the output rank) seen with a larger logical shape: virtual broadcast. */
  broadcastLike(v: Val, logical: readonly number[]): Val {
    return this.view(v, v.shape, v.map, logical);
  }

  broadcast(x: Val, axis: readonly number[], logical: readonly number[]): Val {
    const shape = [...x.shape];
    const map = [...x.map];
    for (const a of [...axis].sort((p, q) => p - q)) {
      shape.splice(a, 0, 1);
      map.splice(a, 0, -1);
    }
    return this.view(x, shape, map, logical);
  }

  compare(eqn: Eqn, env: Map<Var, Val>, op: string, logical: readonly number[]): Val {
    // Operands are compared in their promoted type; weakly typed literals take the other's.
    const nonLit = eqn.inputs.filter(isVar).map((v) => elemType(v.aval.dtype, "a compare operand"));
    const all = nonLit.length ? nonLit : eqn.inputs.map((a) => elemType(a.aval.dtype, "a compare operand"));
    // bools are compared as 0/1 floats (exact): GPU providers have no bool Equal kernel
    const promoted = all.reduce((a, b) => (DTYPE_ORDER.indexOf(a) >= DTYPE_ORDER.indexOf(b) ? a : b));
    const dtype: ElemType = promoted === "bool" ? "float32" : promoted;
    const [x, y] = [0, 1].map((i) => this.cast(this.read(env, eqn.inputs[i], dtype), dtype));
    const ins = [this.materialise(x), this.materialise(y)];
    const shape = broadcastShapes(x.shape, y.shape);
    let out: string;
    switch (op) {
      case "less": out = this.g.node1("Less", ins); break;
      case "less_equal": out = this.g.node1("LessOrEqual", ins); break;
      case "equal": out = this.g.node1("Equal", ins); break;
      case "not_equal": out = this.g.node1("Not", [this.g.node1("Equal", ins)]); break;
      default: throw new UnsupportedPrimitiveError("compare", `op ${op}`);
    }
    return this.dense(out, shape, "bool", logical);
  }

  reduce(x: Val, op: string, axes: readonly number[], keepdims: boolean): Val {
    const keep = (i: number) => !axes.includes(i);
    const outLogical = keepdims ? x.logical.map((d, i) => (keep(i) ? d : 1)) : x.logical.filter((_, i) => keep(i));
    const outShape = keepdims ? x.shape.map((d, i) => (keep(i) ? d : 1)) : x.shape.filter((_, i) => keep(i));
    const outMap = keepdims ? x.map.map((m, i) => (keep(i) ? m : -1)) : x.map.filter((_, i) => keep(i));
    if (x.zero) {
      if (op === "Add" || op === "Max" || op === "Min") return this.zeroVal(x.dtype, outLogical);
    }
    const real = axes.filter((a) => x.shape[a] > 1);
    // Axes broadcast virtually: sum → × extent, product → ^ extent, max/min → unchanged.
    const virtualExtent = prod(axes.filter((a) => x.shape[a] === 1).map((a) => x.logical[a]));
    let v: Val = x.zero ? this.dense(this.materialise(x), x.shape, x.dtype, x.logical) : x;
    const boolReduce = v.dtype === "bool";
    if (boolReduce) {
      if (op !== "Max" && op !== "Min") throw new UnsupportedPrimitiveError("reduce", `op ${op} on bool`);
      v = this.cast(v, "int32");
    }
    if (real.length > 0) {
      const baseAxes = real.map((a) => v.map[a]);
      let base: string;
      switch (op) {
        case "Add":
          base = this.g.node1("ReduceSum", [v.base, this.g.int64s(baseAxes)], [attrInt("keepdims", 1)]);
          break;
        case "Max": case "Min": case "Mul":
          base = this.g.node1(op === "Mul" ? "ReduceProd" : `Reduce${op}`, [v.base], [attrInts("axes", baseAxes), attrInt("keepdims", 1)]);
          break;
        default:
          throw new UnsupportedPrimitiveError("reduce", `op ${op}`);
      }
      const baseShape = v.baseShape.map((d, i) => (baseAxes.includes(i) ? 1 : d));
      v = { dtype: v.dtype, logical: outLogical, shape: outShape, zero: false, base, baseShape, map: outMap };
    } else {
      v = this.view(v, outShape, outMap, outLogical);
    }
    if (virtualExtent !== 1) {
      if (op === "Add") v = this.scale(v, virtualExtent);
      else if (op === "Mul") v = this.onBase(v, "Pow", [], [this.g.constant(v.dtype, [], [virtualExtent])]);
    }
    return boolReduce ? this.cast(v, "bool") : v;
  }

  reshapeVal(x: Val, outLogical: readonly number[]): Val {
    if (x.zero) return this.zeroVal(x.dtype, outLogical);
    if (prod(x.logical) === 0) throw new Error("ONNX lowering: zero-size arrays are not supported");
    const groups = reshapeGroups(x.logical, outLogical);
    const kind = (g: ReshapeGroup) => {
      const big = g.ins.filter((a) => x.logical[a] > 1);
      if (big.every((a) => x.shape[a] === 1)) return "virtual";
      if (big.every((a) => x.shape[a] === x.logical[a])) return "full";
      return "mixed";
    };
    const mixed = groups.filter((g) => kind(g) === "mixed");
    if (mixed.length > 0) return this.reshapeVal(this.expandAxes(x, mixed.flatMap((g) => g.ins)), outLogical);
    const outShape = outLogical.map(() => 1);
    for (const g of groups) if (kind(g) === "full") for (const o of g.outs) outShape[o] = outLogical[o];
    // Pure relabelling when every real group maps one real axis onto one real axis.
    const relabel = groups.every((g) => {
      if (kind(g) !== "full") return true;
      return g.ins.filter((a) => x.shape[a] > 1).length <= 1 && g.outs.filter((o) => outShape[o] > 1).length <= 1;
    });
    if (relabel) {
      const map = outLogical.map(() => -1);
      for (const g of groups) {
        const i = g.ins.find((a) => x.shape[a] > 1);
        const o = g.outs.find((b) => outShape[b] > 1);
        if (i !== undefined && o !== undefined) map[o] = x.map[i];
      }
      return this.view(x, outShape, map, outLogical);
    }
    const m = this.materialise(x);
    return this.dense(this.reshape(m, x.shape, outShape), outShape, x.dtype, outLogical);
  }

  dot(x0: Val, y0: Val, dtype: ElemType, outLogical: readonly number[]): Val {
    const R = outLogical.length; // output rank; the contracted axis is R after alignment
    let x = this.alignRank(this.cast(x0, dtype), R + 1);
    let y = this.alignRank(this.cast(y0, dtype), R + 1);
    if (x.zero || y.zero) return this.zeroVal(dtype, outLogical);
    const kLogical = Math.max(x.logical[R], y.logical[R]);
    this.matmulFlops += 2 * prod(outLogical) * kLogical;
    let factor = 1;
    if (x.shape[R] > 1 && y.shape[R] === 1) x = this.reduce(x, "Add", [R], true);
    else if (y.shape[R] > 1 && x.shape[R] === 1) y = this.reduce(y, "Add", [R], true);
    else if (x.shape[R] === 1 && y.shape[R] === 1) factor = kLogical;

    if (x.shape[R] === 1) {
      // No contraction left: an elementwise product.
      const squeeze = (v: Val) => this.view(v, v.shape.slice(0, R), v.map.slice(0, R), v.logical.slice(0, R));
      const [xs, ys] = [squeeze(x), squeeze(y)];
      const shape = broadcastShapes(xs.shape, ys.shape);
      const out = this.dense(this.g.node1("Mul", [this.materialise(xs), this.materialise(ys)]), shape, dtype, outLogical);
      return this.scale(out, factor);
    }

    const batch: number[] = [], mAxes: number[] = [], nAxes: number[] = [];
    for (let a = 0; a < R; a++) {
      const [sx, sy] = [x.shape[a], y.shape[a]];
      if (sx > 1 && sy > 1) {
        if (sx !== sy) throw new Error(`ONNX lowering: dot batch axis ${a} has extents ${sx} and ${sy}`);
        batch.push(a);
      } else if (sx > 1) mAxes.push(a);
      else if (sy > 1) nAxes.push(a);
    }
    const K = x.shape[R];
    const B = prod(batch.map((a) => x.shape[a]));
    const M = prod(mAxes.map((a) => x.shape[a]));
    const N = prod(nAxes.map((a) => y.shape[a]));
    const lead = batch.length > 0 ? [B] : [];
    // x as [B, M, K]; or [B, K, M] transposed on the last two axes (ONNX Runtime fuses that).
    const xOp = this.operand(x, [...batch, ...mAxes, R], [...lead, M, K], [...batch, R, ...mAxes], [...lead, K, M]);
    const yOp = this.operand(y, [...batch, R, ...nAxes], [...lead, K, N], [...batch, ...nAxes, R], [...lead, N, K]);
    const mm = this.g.node1("MatMul", [xOp, yOp]);
    const mmShape = [...lead, M, N];

    const groupsSimple = batch.length <= 1 && mAxes.length <= 1 && nAxes.length <= 1;
    const outShape = outLogical.map(() => 1);
    const outMap = outLogical.map(() => -1);
    let base = mm, baseShape: number[] = mmShape;
    if (groupsSimple) {
      const off = lead.length;
      for (const a of batch) (outShape[a] = x.shape[a]), (outMap[a] = 0);
      for (const a of mAxes) (outShape[a] = x.shape[a]), (outMap[a] = off);
      for (const a of nAxes) (outShape[a] = y.shape[a]), (outMap[a] = off + 1);
    } else {
      const order = [...batch, ...mAxes, ...nAxes];
      baseShape = order.map((a) => Math.max(x.shape[a], y.shape[a]));
      base = this.reshape(mm, mmShape, baseShape);
      order.forEach((a, i) => ((outShape[a] = baseShape[i]), (outMap[a] = i)));
    }
    const out: Val = { dtype, logical: outLogical, shape: outShape, zero: false, base, baseShape, map: outMap };
    return this.scale(out, factor);
  }

  /**
   * An operand of MatMul: the axes `order` of `v` laid out as `dims` when its base already has
   * them in that order (a Reshape), else `alt` order laid out as `altDims` and transposed on the
   * last two axes, else an explicit Transpose into `order`.
   */
  operand(v: Val, order: readonly number[], dims: readonly number[], alt: readonly number[], altDims: readonly number[]): string {
    const baseOrder = (axes: readonly number[]) => axes.filter((a) => v.shape[a] > 1).map((a) => v.map[a]);
    if (increasing(baseOrder(order))) return this.reshape(v.base, v.baseShape, dims);
    if (increasing(baseOrder(alt))) {
      const t = this.reshape(v.base, v.baseShape, altDims);
      const perm = altDims.length === 3 ? [0, 2, 1] : [1, 0];
      return this.g.node1("Transpose", [t], [attrInts("perm", perm)]);
    }
    const seq = baseOrder(order);
    const rest = range(v.baseShape.length).filter((a) => !seq.includes(a));
    const perm = [...seq, ...rest];
    const t = this.g.node1("Transpose", [v.base], [attrInts("perm", perm)]);
    return this.reshape(t, perm.map((a) => v.baseShape[a]), dims);
  }

  concatenate(xs: Val[], axis: number, dtype: ElemType, outLogical: readonly number[]): Val {
    if (xs.every((v) => v.zero)) return this.zeroVal(dtype, outLogical);
    const rank = outLogical.length;
    const target = range(rank).map((a) => (a === axis ? -1 : xs.some((v) => v.shape[a] > 1) ? outLogical[a] : 1));
    const names = xs.map((v0) => {
      const v = this.cast(v0, dtype);
      return this.expandTo(v, target.map((d, a) => (a === axis ? v.logical[a] : d)));
    });
    const shape = target.map((d) => (d === -1 ? outLogical[axis] : d));
    return this.dense(this.g.node1("Concat", names, [attrInt("axis", axis)]), shape, dtype, outLogical);
  }

  split(x: Val, axis: number, sizes: readonly number[]): Val[] {
    const logicalOf = (s: number) => x.logical.map((d, i) => (i === axis ? s : d));
    if (x.zero) return sizes.map((s) => this.zeroVal(x.dtype, logicalOf(s)));
    if (x.shape[axis] === 1) {
      // Broadcast along the split axis: every piece is the same view.
      return sizes.map((s) => this.view(x, x.shape, x.map, logicalOf(s)));
    }
    if (sizes.some((s) => s === 0)) throw new Error("ONNX lowering: split into zero-size pieces is not supported");
    const baseAxis = x.map[axis];
    const outs = this.g.node("Split", [x.base, this.g.int64s(sizes)], [attrInt("axis", baseAxis)], sizes.length);
    return sizes.map((s, i) => {
      const shape = x.shape.map((d, a) => (a === axis ? s : d));
      const baseShape = x.baseShape.map((d, a) => (a === baseAxis ? s : d));
      const map = s > 1 ? x.map : x.map.map((m, a) => (a === axis ? -1 : m));
      return { dtype: x.dtype, logical: logicalOf(s), shape, zero: false, base: outs[i], baseShape, map };
    });
  }

  shrink(x: Val, slice: readonly [number, number][], outLogical: readonly number[]): Val {
    if (x.zero) return this.zeroVal(x.dtype, outLogical);
    const axes = range(x.shape.length).filter((a) => x.shape[a] > 1 && (slice[a][0] !== 0 || slice[a][1] !== x.shape[a]));
    const shape = x.shape.map((d, a) => (d > 1 ? slice[a][1] - slice[a][0] : 1));
    if (axes.length === 0) return this.view(x, shape, x.map, outLogical);
    const baseAxes = axes.map((a) => x.map[a]);
    const base = this.g.node1("Slice", [
      x.base, this.g.int64s(axes.map((a) => slice[a][0])), this.g.int64s(axes.map((a) => slice[a][1])), this.g.int64s(baseAxes),
    ]);
    const baseShape = [...x.baseShape];
    axes.forEach((a, i) => (baseShape[baseAxes[i]] = slice[a][1] - slice[a][0]));
    const map = x.map.map((m, a) => (shape[a] > 1 ? m : -1));
    return { dtype: x.dtype, logical: outLogical, shape, zero: false, base, baseShape, map };
  }

  pad(x0: Val, width: readonly [number, number][], outLogical: readonly number[]): Val {
    if (x0.zero) return this.zeroVal(x0.dtype, outLogical);
    if (width.some(([lo, hi]) => lo < 0 || hi < 0)) throw new UnsupportedPrimitiveError("pad", "negative widths");
    const padded = range(width.length).filter((a) => width[a][0] !== 0 || width[a][1] !== 0);
    const x = this.expandAxes(x0, padded);
    const m = this.materialise(x);
    const pads = [...width.map(([lo]) => lo), ...width.map(([, hi]) => hi)];
    const shape = x.shape.map((d, a) => (padded.includes(a) ? outLogical[a] : d));
    return this.dense(this.g.node1("Pad", [m, this.g.int64s(pads)]), shape, x.dtype, outLogical);
  }

  /**
   * jax-js's `conv` as one ONNX Conv. lhs [...V, N, C, ...xs], rhs [...V, O, C, ...ks] → [...V, N, O, ...ys]:
   * the leading vmap axes V (grouped convolutions, and convs under vmap) become Conv's groups;
   * lhs dilation (the transposes of strided convs) is zeros inserted between the input's elements;
   * negative padding (also from transposes) crops the input, ONNX's pads being non-negative.
   */
  conv(lhs: Val, rhs: Val, p: ConvParams, dtype: ElemType, outLogical: readonly number[]): Val {
    if (dtype !== "float32") throw new UnsupportedPrimitiveError("conv", `dtype ${dtype}`);
    if (lhs.zero || rhs.zero) return this.zeroVal(dtype, outLogical);
    const v = p.vmapDims, Vdims = lhs.logical.slice(0, v), G = prod(Vdims);
    const [N, C, ...xs] = lhs.logical.slice(v), [O, , ...ks] = rhs.logical.slice(v), ys = outLogical.slice(v + 2);
    const n = xs.length;
    this.matmulFlops += 2 * prod(outLogical) * C * prod(ks);
    let x = this.expandTo(lhs, lhs.logical), w = this.expandTo(rhs, rhs.logical);
    let xShape = [N, G * C, ...xs];
    if (v > 0) {
      // [...V, N, C, …] → [N, G·C, …]: group g reads channels g·C … (g+1)·C − 1
      const t = this.g.node1("Transpose", [this.reshape(x, lhs.logical, [G, N, C, ...xs])], [attrInts("perm", [1, 0, ...range(n + 1).map((a) => a + 2)])]);
      x = this.reshape(t, [N, G, C, ...xs], xShape);
      w = this.reshape(w, rhs.logical, [G * O, C, ...ks]);
    }
    // lhs dilation: d − 1 zeros after each element along a spatial axis (then the trailing ones cut)
    p.lhsDilation.forEach((d, i) => {
      if (d === 1) return;
      const ax = 2 + i, X = xShape[ax];
      const withUnit = [...xShape.slice(0, ax + 1), 1, ...xShape.slice(ax + 1)];
      const padded = this.g.node1("Pad", [this.reshape(x, xShape, withUnit), this.g.int64s([...withUnit.map(() => 0), ...withUnit.map((_, a) => (a === ax + 1 ? d - 1 : 0))])]);
      const spread = [...xShape.slice(0, ax), X * d, ...xShape.slice(ax + 1)];
      x = this.g.node1("Slice", [this.reshape(padded, [...withUnit.slice(0, ax + 1), d, ...withUnit.slice(ax + 2)], spread), this.g.int64s([0]), this.g.int64s([(X - 1) * d + 1]), this.g.int64s([ax])]);
      xShape = [...xShape.slice(0, ax), (X - 1) * d + 1, ...xShape.slice(ax + 1)];
    });
    // negative padding crops
    const crop = range(n).filter((i) => p.padding[i][0] < 0 || p.padding[i][1] < 0);
    if (crop.length > 0) {
      const starts = crop.map((i) => Math.max(0, -p.padding[i][0])), ends = crop.map((i) => xShape[2 + i] - Math.max(0, -p.padding[i][1]));
      x = this.g.node1("Slice", [x, this.g.int64s(starts), this.g.int64s(ends), this.g.int64s(crop.map((i) => 2 + i))]);
      crop.forEach((i, k) => (xShape[2 + i] = ends[k] - starts[k]));
    }
    const pads = [...range(n).map((i) => Math.max(0, p.padding[i][0])), ...range(n).map((i) => Math.max(0, p.padding[i][1]))];
    let y = this.g.node1("Conv", [x, w], [
      attrInts("strides", p.strides), attrInts("pads", pads), attrInts("dilations", p.rhsDilation), attrInt("group", G), attrInts("kernel_shape", ks),
    ]);
    if (v > 0) {
      const t = this.g.node1("Transpose", [this.reshape(y, [N, G * O, ...ys], [N, G, O, ...ys])], [attrInts("perm", [1, 0, ...range(n + 1).map((a) => a + 2)])]);
      y = this.reshape(t, [G, N, O, ...ys], outLogical);
    }
    return this.dense(y, outLogical, dtype, outLogical);
  }

  flip(x: Val, axes: readonly number[]): Val {
    const real = axes.filter((a) => x.shape[a] > 1);
    if (x.zero || real.length === 0) return x;
    const baseAxes = real.map((a) => x.map[a]);
    const base = this.g.node1("Slice", [
      x.base, this.g.int64s(real.map(() => -1)), this.g.int64s(real.map((a) => -(x.shape[a] + 1))), // clamps to -1: through index 0
      this.g.int64s(baseAxes), this.g.int64s(real.map(() => -1)),
    ]);
    return { ...x, base, materialised: undefined };
  }
}

/** The parameters of jax-js's `conv` primitive (per spatial axis, padding as [before, after]). */
type ConvParams = {
  readonly vmapDims: number;
  readonly strides: readonly number[];
  readonly padding: readonly (readonly [number, number])[];
  readonly lhsDilation: readonly number[];
  readonly rhsDilation: readonly number[];
};

/** What the lowering needs of a traced constant (a concrete jax-js Array). */
type ConstArray = { readonly shape: number[]; readonly dtype: string; readonly ref: { dataSync(): ArrayLike<number> & { every(f: (x: number) => boolean): boolean } } };

type ReshapeGroup = { ins: number[]; outs: number[] };

/** Contiguous groups of input and output axes with equal products (unit axes left out). */
function reshapeGroups(inShape: readonly number[], outShape: readonly number[]): ReshapeGroup[] {
  const groups: ReshapeGroup[] = [];
  let i = 0, j = 0;
  const skip = () => {
    while (i < inShape.length && inShape[i] === 1) i++;
    while (j < outShape.length && outShape[j] === 1) j++;
  };
  skip();
  while (i < inShape.length && j < outShape.length) {
    const g: ReshapeGroup = { ins: [i], outs: [j] };
    let pi = inShape[i++], po = outShape[j++];
    while (pi !== po) {
      if (pi < po && i < inShape.length) (pi *= inShape[i]), g.ins.push(i++);
      else if (pi > po && j < outShape.length) (po *= outShape[j]), g.outs.push(j++);
      else throw new Error(`ONNX lowering: reshape [${inShape}] → [${outShape}] changes the size`);
    }
    groups.push(g);
    skip();
  }
  if (i < inShape.length || j < outShape.length) throw new Error(`ONNX lowering: reshape [${inShape}] → [${outShape}]`);
  return groups;
}

function describeParams(params: Record<string, unknown>): string {
  const entries = Object.entries(params).filter(([k]) => k !== "jaxpr");
  return JSON.stringify(Object.fromEntries(entries));
}

/**
 * The nodes and initializers the outputs depend on (nodes are in topological order): values the
 * program computed but did not return (e.g. a student's logvar head when sampling) are dropped.
 */
function liveGraph(nodes: readonly NodeProto[], initializers: readonly TensorProto[], outputs: readonly string[]) {
  const needed = new Set(outputs);
  const live: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    live.push(n);
    for (const x of n.inputs) if (x) needed.add(x);
  }
  return { nodes: live.reverse(), initializers: initializers.filter((t) => needed.has(t.name)) };
}
