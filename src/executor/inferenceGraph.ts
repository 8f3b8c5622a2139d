/**
 * Rewrites of a lowered ONNX graph for inference-only files (`tbcm export`), all in standard
 * `ai.onnx` ops so the files still load in any ONNX Runtime:
 * - `biasNextToMatMul`: `MatMul → Reshape → Add(bias)` becomes `MatMul → Add(bias) → Reshape`, so
 *   the runtime can fuse the bias into the matrix product (the lowering reshapes a dot's 2-D
 *   result back to the operand's rank before the bias is added).
 * - `quantizeMatMuls`: every `MatMul` by a constant 2-D weight becomes dynamic int8 quantization
 *   (`DynamicQuantizeLinear` → `MatMulInteger` → `Cast` → `Mul` by the product of the scales), the
 *   pattern ONNX Runtime fuses into one int8 kernel. Weights are quantized per output column,
 *   symmetric (`W ≈ s_n·q`, q ∈ [−127, 127]); activations per tensor, asymmetric uint8.
 */
import { DataType, type NodeProto, type TensorProto } from "./onnxProto.ts";

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
