/**
 * Single-op graphs (written with src/executor/onnxProto.ts) run by the importer and by
 * onnxruntime-node: the ops whose attribute handling is easy to get wrong (conv geometry, strided
 * and reversed slices, opset-dependent forms). Each imported graph is also lowered back to ONNX
 * with lower.ts and run again, which checks that the op's jax-js form uses lowerable primitives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { importOnnx } from "../../src/onnx/graph.ts";
import { decodeOnnx } from "../../src/onnx/reader.ts";
import { lowerFunction, avalSpec } from "../../src/executor/lower.ts";
import {
  type Attribute, type NodeProto, type TensorProto, DataType, attrInt, attrInts, attrFloat, attrString, encodeModel, float32Tensor, int64Tensor,
} from "../../src/executor/onnxProto.ts";

type Case = {
  name: string;
  opset?: number;
  nodes: NodeProto[];
  inputs: { name: string; shape: number[] }[];
  /** Float initializers (parameters) and int64 constants. */
  inits?: TensorProto[];
  lower?: boolean;
};

const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(1.3 * i + seed) + 0.1 * Math.cos(7.1 * i));
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const node = (opType: string, inputs: string[], attributes: Attribute[] = [], outputs = ["y"]): NodeProto => ({ opType, inputs, outputs, name: `/${opType}_${outputs[0]}`, attributes });
const w = (name: string, shape: number[], seed = 3) => float32Tensor(name, shape, values(prod(shape), seed));

async function check(c: Case): Promise<void> {
  const opset = c.opset ?? 17;
  const encode = (outShape: number[]) => encodeModel({
    opsetVersion: opset,
    irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : 8,
    graph: {
      name: c.name, nodes: c.nodes, initializers: c.inits ?? [],
      inputs: c.inputs.map((i) => ({ name: i.name, elemType: DataType.FLOAT, shape: i.shape })),
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: outShape }],
    },
  });
  const feeds = c.inputs.map((inp, k) => ({ ...inp, data: values(prod(inp.shape), k) }));
  const arrays = () => feeds.map((f) => np.array(f.data, { shape: f.shape }));
  // Our output's shape goes into the file; onnxruntime's shape inference checks it.
  const probe = importOnnx(decodeOnnx(encode([]), { file: `${c.name}.onnx` }));
  const [out0] = probe.apply(probe.paramArrays(), arrays());
  const shape = out0.shape;
  const got = out0.dataSync() as Float32Array;
  const bytes = encode(shape);
  const session = await ort.InferenceSession.create(bytes);
  const res = await session.run(Object.fromEntries(feeds.map((f) => [f.name, new ort.Tensor("float32", f.data, f.shape)])));
  await session.release();
  const want = res.y.data as Float32Array;
  assert.deepEqual(shape, [...res.y.dims], `${c.name}: shape`);
  let e = 0;
  for (let i = 0; i < want.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]));
  assert.ok(e < 1e-5, `${c.name}: max |Δ| ${e.toExponential(2)}`);

  if (c.lower === false) return;
  const m = importOnnx(decodeOnnx(bytes, { file: `${c.name}.onnx` }));
  const [leaves, def] = tree.flatten(m.paramArrays() as never) as unknown as [Array[], Parameters<typeof tree.unflatten>[0]];
  const n = leaves.length;
  const f = (...xs: Array[]) => m.apply(tree.unflatten(def, xs.slice(0, n)) as Record<string, Array>, xs.slice(n));
  const lowered = lowerFunction(f, [...leaves.map((l) => avalSpec(l.shape)), ...feeds.map((x) => avalSpec(x.shape))] as never);
  const s2 = await ort.InferenceSession.create(lowered.model);
  const inFeeds: Record<string, ort.Tensor> = {};
  lowered.inputs.forEach((spec, i) => {
    inFeeds[spec.name] = new ort.Tensor("float32", i < n ? (leaves[i].ref.dataSync() as Float32Array) : feeds[i - n].data, [...spec.shape]);
  });
  const low = (await s2.run(inFeeds))[lowered.outputs[0].name].data as Float32Array;
  await s2.release();
  tree.dispose(leaves as never);
  let e2 = 0;
  for (let i = 0; i < want.length; i++) e2 = Math.max(e2, Math.abs(low[i] - want[i]));
  assert.ok(e2 < 1e-5, `${c.name} lowered: max |Δ| ${e2.toExponential(2)}`);
}

const i64 = (name: string, v: number[]) => int64Tensor(name, [v.length], v);

const CASES: Case[] = [
  {
    name: "conv-strided-dilated-grouped",
    nodes: [node("Conv", ["x", "w", "b"], [attrInts("strides", [2, 1]), attrInts("dilations", [1, 2]), attrInts("pads", [1, 0, 2, 1]), attrInt("group", 2)])],
    inputs: [{ name: "x", shape: [2, 4, 7, 6] }], inits: [w("w", [6, 2, 3, 2]), w("b", [6], 5)],
  },
  {
    name: "conv-same-upper-1d",
    nodes: [node("Conv", ["x", "w"], [attrString("auto_pad", "SAME_UPPER"), attrInts("strides", [2])])],
    inputs: [{ name: "x", shape: [1, 3, 9] }], inits: [w("w", [5, 3, 4])],
  },
  {
    name: "conv-transpose-strided-grouped",
    nodes: [node("ConvTranspose", ["x", "w", "b"], [attrInts("strides", [2, 3]), attrInts("pads", [1, 0, 0, 1]), attrInts("output_padding", [1, 2]), attrInt("group", 2)])],
    inputs: [{ name: "x", shape: [2, 4, 3, 4] }], inits: [w("w", [4, 3, 3, 3]), w("b", [6], 5)],
  },
  {
    name: "conv-transpose-dilated",
    nodes: [node("ConvTranspose", ["x", "w"], [attrInts("dilations", [2, 1]), attrInts("strides", [1, 2])])],
    inputs: [{ name: "x", shape: [1, 2, 4, 3] }], inits: [w("w", [2, 3, 2, 3])],
  },
  {
    name: "slice-steps-and-reverse",
    nodes: [node("Slice", ["x", "starts", "ends", "axes", "steps"])],
    inputs: [{ name: "x", shape: [5, 7, 6] }],
    inits: [i64("starts", [-1, 1, 0]), i64("ends", [-(2 ** 53 - 1), 7, 100]), i64("axes", [0, 1, 2]), i64("steps", [-2, 3, 1])],
  },
  {
    name: "gather-constant-indices",
    nodes: [node("Gather", ["x", "idx"], [attrInt("axis", 1)])],
    inputs: [{ name: "x", shape: [3, 6, 2] }], inits: [int64Tensor("idx", [2, 2], [4, -1, 0, 1])],
  },
  {
    name: "pad-constant-negative",
    nodes: [node("Pad", ["x", "pads", "cv"])],
    inputs: [{ name: "x", shape: [2, 5, 4] }], inits: [i64("pads", [0, 2, -1, 0, -2, 3]), float32Tensor("cv", [], [0.75])],
  },
  {
    name: "group-and-instance-norm",
    opset: 21,
    nodes: [
      node("GroupNormalization", ["x", "gs", "gb"], [attrInt("num_groups", 2), attrFloat("epsilon", 1e-3)], ["g"]),
      node("InstanceNormalization", ["g", "is", "ib"]),
    ],
    inputs: [{ name: "x", shape: [2, 4, 3, 3] }], inits: [w("gs", [4], 1), w("gb", [4], 2), w("is", [4], 3), w("ib", [4], 4)],
  },
  {
    name: "softmax-opset11-coerced",
    opset: 11,
    nodes: [node("Softmax", ["x"], [attrInt("axis", 1)])],
    inputs: [{ name: "x", shape: [2, 3, 4] }],
  },
  {
    name: "split-equal-tile-flatten",
    opset: 18,
    nodes: [
      node("Split", ["x"], [attrInt("axis", 1), attrInt("num_outputs", 2)], ["a", "b"]),
      node("Tile", ["a", "reps"], [], ["ta"]),
      node("Tile", ["b", "reps"], [], ["b2"]),
      node("Sub", ["ta", "b2"], [], ["d"]),
      node("Flatten", ["d"], [attrInt("axis", 2)]),
    ],
    inputs: [{ name: "x", shape: [2, 6, 3] }], inits: [i64("reps", [1, 2, 1])],
  },
  {
    name: "range-constantofshape-expand-where",
    nodes: [
      node("Shape", ["x"], [], ["s"]),
      node("Gather", ["s", "one"], [attrInt("axis", 0)], ["n"]),
      node("Range", ["zero", "n", "step"], [], ["r"]),
      node("Cast", ["r"], [attrInt("to", 1)], ["rf"]),
      node("ConstantOfShape", ["s"], [], ["z"]),
      node("Greater", ["x", "z"], [], ["pos"]),
      node("Expand", ["rf", "s"], [], ["e"]),
      node("Where", ["pos", "e", "x"], [], ["wv"]),
      node("Pow", ["wv", "two"], [], ["p"]),
      node("ReduceMax", ["p"], [attrInts("axes", [0]), attrInt("keepdims", 0)], ["y"]),
    ],
    inputs: [{ name: "x", shape: [3, 5] }],
    inits: [int64Tensor("one", [], [1]), int64Tensor("zero", [], [0]), int64Tensor("step", [], [1]), float32Tensor("two", [], [2])],
  },
];

for (const c of CASES) test(`${c.name}: importer = onnxruntime-node (and lowered)`, () => check(c));
