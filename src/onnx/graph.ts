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
 * - Each op (ops/: elementwise, shape, linalg, nn, resample; values.ts holds what they compute
 *   with) is a function of a node's inputs and attributes. Every op on arrays is written with
 *   primitives that `src/executor/lower.ts` translates (Conv is jax-js's conv primitive, one ONNX
 *   Conv again, its JVP and transposes convs too; no `gather`: Gather by constant indices is
 *   slices), so programs built on `apply` lower to ONNX again for onnxruntime.
 * - Arithmetic is float32 throughout (a float16 or bfloat16 model is computed in float32), as is
 *   everything else in this project; integer arrays are jax-js int32.
 *
 * Ownership follows jax-js: `apply` consumes its parameter and input arrays. Inside, every node
 * *borrows* its inputs (each use takes a fresh `.ref`) and the evaluator disposes a value after
 * its last consumer.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { Ctx, type Host, type ImportTarget, MAX_ARRAY_ELEMENTS, type Op, type Value, arr, checkedSize, isFloat, lift } from "./values.ts";
import { ELEMENTWISE_OPS } from "./ops/elementwise.ts";
import { SHAPE_OPS, tensorValue } from "./ops/shape.ts";
import { LINALG_OPS } from "./ops/linalg.ts";
import { NN_OPS } from "./ops/nn.ts";
import { RESAMPLE_OPS } from "./ops/resample.ts";
import { type OnnxModel, type OnnxDim, type OnnxGraph, type OnnxNode, oneLine, readOnnxFile } from "./reader.ts";

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
    super(oneLine(message)); // names come from the file: a control character in one must not break the line
    this.name = "OnnxImportError";
  }
}

// ---------------------------------------------------------------------------------------------
// The op table

const OPS: Record<string, Op> = { ...ELEMENTWISE_OPS, ...SHAPE_OPS, ...LINALG_OPS, ...NN_OPS, ...RESAMPLE_OPS };

/** Op types that hold subgraphs, run by the evaluator itself: If, whose condition must be known on the host (computable from shapes). */
const CONTROL_OPS = ["If"];

/** The ONNX op types `importOnnx` supports (default domain). */
export const SUPPORTED_OPS: readonly string[] = [...Object.keys(OPS), ...CONTROL_OPS].sort();

const subgraphs = (n: OnnxNode): OnnxGraph[] => Object.values(n.attributes).flatMap((a) => (a.g ? [a.g] : []));

/** The nodes of a graph and of every subgraph in it. */
function allNodes(nodes: readonly OnnxNode[]): OnnxNode[] {
  return nodes.flatMap((n) => [n, ...subgraphs(n).flatMap((g) => allNodes(g.nodes))]);
}

/** What a node reads: its inputs, and for a node with subgraphs the names they read from the enclosing scopes. */
function nodeReads(n: OnnxNode): string[] {
  return [...n.inputs, ...subgraphs(n).flatMap(outerReads)];
}

/** The names a subgraph reads but does not define (its nodes' and nested subgraphs' inputs, its outputs). */
function outerReads(g: OnnxGraph): string[] {
  const defined = new Set([...g.initializers.map((t) => t.name), ...g.inputs.map((i) => i.name), ...g.nodes.flatMap((n) => n.outputs)]);
  return [...new Set([...g.nodes.flatMap(nodeReads), ...g.outputs.map((o) => o.name)])].filter((name) => name !== "" && !defined.has(name));
}

/** Input positions an op reads as values known in advance (a float initializer there stays a constant). */
const STATIC_INPUTS: Record<string, number[]> = {
  Reshape: [1], Expand: [1], Tile: [1], Slice: [1, 2, 3, 4], Split: [1], Squeeze: [1], Unsqueeze: [1], Pad: [1, 2, 3],
  ReduceSum: [1], ReduceMean: [1], ReduceMax: [1], ReduceMin: [1], ReduceProd: [1], ReduceSumSquare: [1], ReduceL2: [1],
  ReduceL1: [1], ReduceLogSum: [1], ReduceLogSumExp: [1], Resize: [1, 2, 3], Upsample: [1], CumSum: [1], Trilu: [1],
  ConstantOfShape: [0], Range: [0, 1, 2], Clip: [1, 2], Pow: [1], Dropout: [1, 2], Gather: [1], ScatterND: [1], If: [0],
};

// ---------------------------------------------------------------------------------------------
// Import

/** Reads `file` (and its external data) and imports it. */
export function importOnnx(source: string | OnnxModel, o: { target?: ImportTarget } = {}): ImportedOnnx {
  const target = o.target ?? "onnx";
  const model = typeof source === "string" ? readOnnxFile(source) : source;
  const { file, graph } = model;
  const opset = model.opsets[""] ?? model.opsets["ai.onnx"] ?? 1;
  const where = `"${file}"`;

  for (const n of allNodes(graph.nodes)) {
    if ((n.domain !== "" || !(n.opType in OPS || CONTROL_OPS.includes(n.opType)))) {
      const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
      // the usual causes of a node outside the default domain, and their remedies
      const hint = n.domain === "com.microsoft" ? " (an onnxruntime-optimised file: export the model again without onnxruntime's graph optimisations)"
        : n.domain ? " (a custom operator; the model's own functions are inlined, so this one is not among them)" : "";
      throw new OnnxImportError(`${where}: unsupported ONNX operator ${op} (node "${n.name || n.outputs[0]}")${hint}; supported: ${SUPPORTED_OPS.join(" ")}`);
    }
  }

  // Which initializers are read as data somewhere (→ parameters, when floating).
  const dataUse = new Set<string>();
  for (const n of allNodes(graph.nodes)) {
    const st = STATIC_INPUTS[n.opType] ?? [];
    n.inputs.forEach((name, i) => !st.includes(i) && dataUse.add(name));
    for (const g of subgraphs(n)) for (const o of g.outputs) dataUse.add(o.name);
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
  const reads = new Map(graph.nodes.map((n) => [n, nodeReads(n)]));
  for (const n of graph.nodes) reads.get(n)!.forEach(use);
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

  /**
   * If: the branch its condition picks, run on the enclosing scope's values (`outer`); the condition
   * must be known on the host (torch's exporter writes If for a squeeze of an axis whose size it did
   * not know: here every shape is known). The branch's own values are released when it ends.
   */
  const runIf = (n: OnnxNode, ins: (Value | undefined)[], outer: (name: string) => Value | undefined): Value[] => {
    const cond = ins[0];
    if (cond === undefined || cond.kind !== "host") throw new Error("the condition depends on the model's inputs or parameters; only a condition computable from shapes and constants is supported");
    if (cond.data.length !== 1) throw new Error(`the condition has ${cond.data.length} elements; it must be one boolean`);
    const g = (cond.data[0] ? n.attributes.then_branch : n.attributes.else_branch)?.g;
    if (g === undefined) throw new Error(`no ${cond.data[0] ? "then_branch" : "else_branch"} subgraph`);
    const local = new Map<string, Value>();
    const get = (name: string) => {
      const v = local.get(name) ?? outer(name);
      if (v === undefined) throw new Error(`the branch reads "${name}", which is not computed before it`);
      return v;
    };
    try {
      for (const t of g.initializers) local.set(t.name, tensorValue(t));
      for (const b of g.nodes) {
        const bins = b.inputs.map((name) => (name === "" ? undefined : get(name)));
        let r: Value | Value[];
        try {
          r = b.opType === "If" ? runIf(b, bins, get) : OPS[b.opType](new Ctx(b, bins, opset, target));
        } catch (e) {
          throw new Error(`in its branch, node "${b.name || b.outputs[0]}" (${b.opType}): ${(e as Error).message.split("\n")[0]}`);
        }
        const outs = globalThis.Array.isArray(r) ? r : [r];
        b.outputs.forEach((name, i) => {
          const v = outs[i];
          if (!name || v === undefined) return;
          local.set(name, v.kind === "array" && bins.some((x) => x === v) ? arr(v.a.ref) : v);
        });
        outs.slice(b.outputs.length).forEach((v) => v.kind === "array" && v.a.dispose());
      }
      // the branch's outputs, each with a reference of its own (the branch's values are released below)
      return g.outputs.map((o) => {
        const v = get(o.name);
        return v.kind === "array" ? arr(v.a.ref) : v;
      });
    } finally {
      for (const v of local.values()) if (v.kind === "array") v.a.dispose();
    }
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
          const r = n.opType === "If" ? runIf(n, ins, (name) => env.get(name)) : OPS[n.opType](new Ctx(n, ins, opset, target));
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
        for (const name of reads.get(n)!) {
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
