/**
 * Rewrites of a lowered ONNX graph for inference-only files (`tbcm export`), all in standard
 * `ai.onnx` ops so the files still load in any ONNX Runtime:
 * - `biasNextToMatMul`: `MatMul → Reshape → Add(bias)` becomes `MatMul → Add(bias) → Reshape`, so
 *   the runtime can fuse the bias into the matrix product (the lowering reshapes a dot's 2-D
 *   result back to the operand's rank before the bias is added).
 * - `fuseNormsAndActivations`: the lowering's decompositions of layer norm, RMS norm, softmax and
 *   SiLU (10–17 elementwise nodes each, with reshapes) become `LayerNormalization`, a 5-node RMS
 *   norm, `Softmax` and `Sigmoid → Mul` — fewer kernels at small batch, where each costs ~1 µs.
 * - `quantizeMatMuls`: every `MatMul` by a constant 2-D weight becomes dynamic int8 quantization
 *   (`DynamicQuantizeLinear` → `MatMulInteger` → `Cast` → `Mul` by the product of the scales), the
 *   pattern ONNX Runtime fuses into one int8 kernel. Weights are quantized per output column,
 *   symmetric (`W ≈ s_n·q`, q ∈ [−127, 127]); activations per tensor, asymmetric uint8.
 */
import { DataType, attrFloat, attrInt, attrInts, float32Tensor, type NodeProto, type TensorProto } from "./onnxProto.ts";

export type Graph = { nodes: NodeProto[]; initializers: TensorProto[] };

const floats = (t: TensorProto) => new Float32Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength));
const int64s = (t: TensorProto) => globalThis.Array.from(new BigInt64Array(t.raw.buffer.slice(t.raw.byteOffset, t.raw.byteOffset + t.raw.byteLength)), Number);

function consumers(nodes: readonly NodeProto[]): Map<string, number> {
  const count = new Map<string, number>();
  for (const n of nodes) for (const x of n.inputs) count.set(x, (count.get(x) ?? 0) + 1);
  return count;
}

/** Moves a per-column bias added after `MatMul → Reshape` to before the reshape, where the reshape keeps the last axis. */
export function biasNextToMatMul(g: Graph): Graph {
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const uses = consumers(g.nodes);
  const producer = new Map<string, NodeProto>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const replaced = new Map<NodeProto, NodeProto[]>();
  const removed = new Set<NodeProto>();
  for (const add of g.nodes) {
    if (add.opType !== "Add") continue;
    const [a, b] = add.inputs;
    const reshape = producer.get(a);
    const bias = inits.get(b);
    if (reshape?.opType !== "Reshape" || bias === undefined || bias.dataType !== DataType.FLOAT || bias.dims.length !== 1) continue;
    const matmul = producer.get(reshape.inputs[0]);
    const target = inits.get(reshape.inputs[1]);
    const weight = matmul && inits.get(matmul.inputs[1]);
    if (matmul?.opType !== "MatMul" || target === undefined || weight === undefined || weight.dims.length !== 2) continue;
    const N = weight.dims[1];
    if (bias.dims[0] !== N || int64s(target).at(-1) !== N) continue;
    if (uses.get(matmul.outputs[0]) !== 1 || uses.get(reshape.outputs[0]) !== 1) continue;
    const biased = `${matmul.outputs[0]}_bias`;
    removed.add(add);
    replaced.set(reshape, [
      { opType: "Add", inputs: [matmul.outputs[0], b], outputs: [biased], name: `${add.name ?? biased}_moved` },
      { ...reshape, inputs: [biased, reshape.inputs[1]], outputs: add.outputs },
    ]);
  }
  return { nodes: g.nodes.flatMap((n) => (removed.has(n) ? [] : replaced.get(n) ?? [n])), initializers: g.initializers };
}

/**
 * Replaces decomposed layer norms, RMS norms, softmaxes and SiLUs (as `lower.ts` emits them) by
 * their standard ONNX forms. The old nodes are left dead for the caller's sweep (`liveGraph`).
 * Only the last axis is normalised (checked from the keep-dims reshape the decomposition carries).
 */
export function fuseNormsAndActivations(g: Graph): Graph {
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const producer = new Map<string, NodeProto>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const added: TensorProto[] = [];
  const scalar = (x: string) => { const t = inits.get(x); return t && t.dataType === DataType.FLOAT && t.dims.reduce((a, b) => a * b, 1) === 1 ? floats(t)[0] : undefined; };
  const intsOf = (x: string) => { const t = inits.get(x); return t && t.dataType === DataType.INT64 ? int64s(t) : undefined; };
  const attr = (n: NodeProto, name: string) => n.attributes?.find((a) => a.name === name)?.value;
  /** The node computing `x` looking through reshapes, and the reshape targets passed. */
  const through = (x: string) => {
    const targets: number[][] = [];
    let n = producer.get(x);
    while (n?.opType === "Reshape") {
      targets.push(intsOf(n.inputs[1]) ?? []);
      n = producer.get(n.inputs[0]);
    }
    return { node: n, targets };
  };
  const op = (n: NodeProto | undefined, type: string) => (n?.opType === type ? n : undefined);
  /** `Op(a, c)` or `Op(c, a)` with a scalar constant c: [a, c], else undefined. */
  const withScalar = (n: NodeProto | undefined, type: string): [string, number] | undefined => {
    if (n?.opType !== type) return undefined;
    const [a, b] = n.inputs;
    const cb = scalar(b), ca = scalar(a);
    return cb !== undefined ? [a, cb] : ca !== undefined ? [b, ca] : undefined;
  };
  /** ReduceSum over one axis with keepdims, that axis the last of the keep-dims shape in `targets`. */
  const lastAxisSum = (n: NodeProto | undefined, targets: number[][]) => {
    if (n?.opType !== "ReduceSum" || attr(n, "keepdims") !== 1) return undefined;
    const axes = intsOf(n.inputs[1]);
    const keep = targets.find((t) => t.at(-1) === 1);
    return axes?.length === 1 && keep && axes[0] === keep.length - 1 ? { input: n.inputs[0], axis: axes[0] } : undefined;
  };
  /** `mean(v) = ReduceSum(v)·(1/D)` through reshapes: [v, D] or undefined. */
  const mean = (x: string): [string, number, number] | undefined => {
    const m = through(x);
    const scaled = withScalar(m.node, "Mul");
    if (!scaled) return undefined;
    const r = through(scaled[0]);
    const sum = lastAxisSum(r.node, [...m.targets, ...r.targets]);
    return sum ? [sum.input, Math.round(1 / scaled[1]), sum.axis] : undefined;
  };
  /** `1/sqrt(mean(v) + eps)`: [v, D, eps, axis] or undefined. */
  const inverseRms = (x: string): [string, number, number, number] | undefined => {
    const sqrt = op(producer.get(op(producer.get(x), "Reciprocal")?.inputs[0] ?? ""), "Sqrt");
    const plus = withScalar(through(sqrt?.inputs[0] ?? "").node, "Add");
    const m = plus && mean(plus[0]);
    return m && plus ? [m[0], m[1], plus[1], m[2]] : undefined;
  };

  const replaced = new Map<NodeProto, NodeProto[]>();
  for (const y of g.nodes) {
    if (y.opType !== "Mul") continue;
    const out = y.outputs[0];
    for (const [x, r] of [y.inputs, [...y.inputs].reverse()]) {
      // softmax: Mul(e, 1/ReduceSum(e)), e = Exp(x − ReduceMax(x))
      const e = op(producer.get(x), "Exp");
      const recip = op(producer.get(r), "Reciprocal");
      const sum = op(producer.get(recip?.inputs[0] ?? ""), "ReduceSum");
      const shifted = op(producer.get(e?.inputs[0] ?? ""), "Add");
      if (e && sum && sum.inputs[0] === x && shifted && attr(sum, "keepdims") === 1) {
        const [p, q] = shifted.inputs;
        const max = [[p, q], [q, p]].map(([a, b]) => ({ a, m: op(producer.get(op(producer.get(b), "Neg")?.inputs[0] ?? ""), "ReduceMax") })).find((c) => c.m?.inputs[0] === c.a);
        const axes = max && (attr(max.m!, "axes") as number[] | undefined);
        const sumAxes = intsOf(sum.inputs[1]);
        if (max && axes?.length === 1 && sumAxes?.length === 1 && sumAxes[0] === axes[0]) {
          replaced.set(y, [{ opType: "Softmax", inputs: [max.a], outputs: [out], name: `${out}_softmax`, attributes: [attrInt("axis", axes[0])] }]);
          break;
        }
      }
      // SiLU: Mul(x, 1/(1 + exp(−x)))
      const onePlus = withScalar(producer.get(recip?.inputs[0] ?? ""), "Add");
      const expNeg = onePlus && onePlus[1] === 1 ? op(producer.get(onePlus[0]), "Exp") : undefined;
      const neg = op(producer.get(expNeg?.inputs[0] ?? ""), "Neg");
      if (neg && neg.inputs[0] === x) {
        replaced.set(y, [
          { opType: "Sigmoid", inputs: [x], outputs: [`${out}_sigmoid`], name: `${out}_sigmoid` },
          { opType: "Mul", inputs: [x, `${out}_sigmoid`], outputs: [out], name: `${out}_silu` },
        ]);
        break;
      }
      // norms: Mul(c, 1/sqrt(mean(c·c) + eps))
      const inv = inverseRms(r);
      const square = op(producer.get(inv?.[0] ?? ""), "Mul");
      if (!inv || !square || square.inputs[0] !== x || square.inputs[1] !== x) continue;
      const [, D, eps, axis] = inv;
      // layer norm when c = v − mean(v): LayerNormalization(v) with unit scale, zero bias
      const centred = op(producer.get(x), "Add");
      const centre = centred && [[centred.inputs[0], centred.inputs[1]], [centred.inputs[1], centred.inputs[0]]]
        .map(([v, nm]) => ({ v, m: mean(op(producer.get(nm), "Neg")?.inputs[0] ?? "") })).find((c) => c.m && c.m[0] === c.v && c.m[1] === D);
      if (centre) {
        added.push(float32Tensor(`${out}_ones`, [D], new Float32Array(D).fill(1)), float32Tensor(`${out}_zeros`, [D], new Float32Array(D)));
        replaced.set(y, [{ opType: "LayerNormalization", inputs: [centre.v, `${out}_ones`, `${out}_zeros`], outputs: [out], name: `${out}_layernorm`,
          attributes: [attrInt("axis", -1), attrFloat("epsilon", eps)] }]);
      } else {
        added.push(float32Tensor(`${out}_eps`, [], [eps]));
        replaced.set(y, [
          { opType: "ReduceMean", inputs: [square.outputs[0]], outputs: [`${out}_ms`], name: `${out}_ms`, attributes: [attrInts("axes", [axis]), attrInt("keepdims", 1)] },
          { opType: "Add", inputs: [`${out}_ms`, `${out}_eps`], outputs: [`${out}_mse`], name: `${out}_mse` },
          { opType: "Sqrt", inputs: [`${out}_mse`], outputs: [`${out}_rms`], name: `${out}_rms` },
          { opType: "Div", inputs: [x, `${out}_rms`], outputs: [out], name: `${out}_rmsnorm` },
        ]);
      }
      break;
    }
  }
  return { nodes: g.nodes.flatMap((n) => replaced.get(n) ?? [n]), initializers: [...g.initializers, ...added] };
}

/** Symmetric per-column int8 codes and scales of a [K, N] weight. */
export function quantizeColumns(w: Float32Array, K: number, N: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) scale[n] = Math.max(scale[n], Math.abs(w[k * N + n]));
  for (let n = 0; n < N; n++) scale[n] = scale[n] > 0 ? scale[n] / 127 : 1;
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) q[k * N + n] = Math.round(w[k * N + n] / scale[n]);
  return { q, scale };
}

/** Dynamic int8 quantization of every MatMul by a constant [K, N] float weight. */
export function quantizeMatMuls(g: Graph): Graph {
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const added: TensorProto[] = [];
  const nodes = g.nodes.flatMap((n): NodeProto[] => {
    const w = n.opType === "MatMul" ? inits.get(n.inputs[1]) : undefined;
    if (w === undefined || w.dataType !== DataType.FLOAT || w.dims.length !== 2) return [n];
    const [K, N] = w.dims;
    const { q, scale } = quantizeColumns(floats(w), K, N);
    const p = n.outputs[0];
    added.push(
      { name: `${p}_wq`, dims: [K, N], dataType: DataType.INT8, raw: new Uint8Array(q.buffer) },
      { name: `${p}_ws`, dims: [N], dataType: DataType.FLOAT, raw: new Uint8Array(scale.buffer) },
    );
    return [
      { opType: "DynamicQuantizeLinear", inputs: [n.inputs[0]], outputs: [`${p}_aq`, `${p}_as`, `${p}_az`], name: `${p}_quantize` },
      { opType: "MatMulInteger", inputs: [`${p}_aq`, `${p}_wq`, `${p}_az`], outputs: [`${p}_int`], name: `${p}_matmul_int8` },
      { opType: "Cast", inputs: [`${p}_int`], outputs: [`${p}_f`], name: `${p}_cast`, attributes: [{ name: "to", type: "int", value: DataType.FLOAT }] },
      { opType: "Mul", inputs: [`${p}_as`, `${p}_ws`], outputs: [`${p}_s`], name: `${p}_scales` },
      { opType: "Mul", inputs: [`${p}_f`, `${p}_s`], outputs: [p], name: `${p}_dequantize` },
    ];
  });
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return { nodes, initializers: [...g.initializers, ...added].filter((t) => used.has(t.name)) };
}
