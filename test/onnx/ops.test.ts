/**
 * Single-op graphs (written with src/executor/onnxProto.ts) run by the importer and by
 * onnxruntime-node: the ops whose attribute handling is easy to get wrong (conv geometry, strided
 * and reversed slices, opset-dependent forms). Each imported graph is also lowered back to ONNX
 * with lower.ts and run again, which checks that the op's jax-js form uses lowerable primitives.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { numpy as np, tree, jvp, valueAndGrad, type Array } from "@jax-js/jax";
import { readFileSync } from "node:fs";
import { importOnnx, OnnxImportError, SUPPORTED_OPS } from "../../src/onnx/graph.ts";
import { decodeOnnx, OnnxReadError } from "../../src/onnx/reader.ts";
import { lowerFunction, avalSpec } from "../../src/executor/lower.ts";
import {
  type Attribute, type NodeProto, type TensorProto, type GraphProto, DataType, attrInt, attrInts, attrFloat, attrString, attrGraph, encodeModel, float32Tensor, int64Tensor, boolTensor,
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
    irVersion: opset >= 23 ? 11 : opset >= 21 ? 10 : opset >= 19 ? 9 : 8,
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
  if (c.nodes.some((n) => n.opType === "Conv" || n.opType === "ConvTranspose")) {
    // the form for jax-js's own backend (im2col) computes the same
    const jaxForm = importOnnx(decodeOnnx(bytes, { file: `${c.name}.onnx` }), { target: "jax" });
    const alt = jaxForm.apply(jaxForm.paramArrays(), arrays())[0].dataSync() as Float32Array;
    const ej = alt.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
    assert.ok(ej < 1e-5, `${c.name} (target jax): max |Δ| ${ej.toExponential(2)}`);
  }

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

/** An If branch: no inputs of its own, reading the enclosing graph's values; outputs of unknown shape. */
const branch = (name: string, nodes: NodeProto[], outputs: string[], rank = 3): GraphProto => ({
  name, nodes, initializers: [], inputs: [],
  outputs: outputs.map((o) => ({ name: o, elemType: DataType.FLOAT, shape: globalThis.Array.from({ length: rank }, (_, i) => `${o}_${i}`) })),
});
// torch's exporter writes x.squeeze(1) on an axis of unknown size as If(size == 1, Squeeze, Identity)
const squeezeIf = (out: string): NodeProto[] => [
  node("Shape", ["x"], [], ["shape"]), node("Gather", ["shape", "one"], [attrInt("axis", 0)], ["dim1"]), node("Equal", ["dim1", "one"], [], ["is1"]),
  node("If", ["is1"], [
    attrGraph("then_branch", branch("then", [node("Squeeze", ["x", "axes1"], [], ["sq"]), node("Mul", ["sq", "w2"], [], ["then_out"])], ["then_out"], 2)),
    attrGraph("else_branch", branch("else", [node("Identity", ["x"], [], ["else_out"])], ["else_out"])),
  ], [out]),
];

const CASES: Case[] = [
  {
    // torch's x[:, 0] = u: an in-place index assignment, its indices built from shapes
    name: "scatternd-slice-assignment",
    nodes: [node("ScatterND", ["x", "idx", "u"], [], ["s"]), node("Tanh", ["s"])],
    inputs: [{ name: "x", shape: [2, 3, 4] }, { name: "u", shape: [2, 4] }], inits: [int64Tensor("idx", [2, 2], [0, 0, 1, 0])],
  },
  {
    name: "scatternd-add-rows-negative-index",
    opset: 18,
    nodes: [node("ScatterND", ["x", "idx", "u"], [attrString("reduction", "add")])],
    inputs: [{ name: "x", shape: [5, 3] }, { name: "u", shape: [2, 3] }], inits: [int64Tensor("idx", [2, 1], [-1, 1])],
  },
  {
    // the same column of every sample (indices over the batch rows), added to: scattered per sample
    name: "scatternd-add-per-sample",
    opset: 18,
    nodes: [node("ScatterND", ["x", "idx", "u"], [attrString("reduction", "add")])],
    inputs: [{ name: "x", shape: [3, 4, 2] }, { name: "u", shape: [3, 2, 2] }], inits: [int64Tensor("idx", [3, 2, 2], [0, 1, 0, 3, 1, 1, 1, 3, 2, 1, 2, 3])],
  },
  {
    // torch.gather along a middle axis, the indices shorter than the data on another axis, a negative one
    name: "gather-elements-constant-indices",
    nodes: [node("GatherElements", ["x", "idx"], [attrInt("axis", 1)], ["g"]), node("Tanh", ["g"])],
    inputs: [{ name: "x", shape: [2, 4, 3] }], inits: [int64Tensor("idx", [2, 3, 2], [3, 0, 1, 1, -1, 2, 0, 0, 2, 3, 1, -4])],
  },
  {
    // x[rows, cols] with two index tensors (GatherND over the first two axes), and the same entry over every batch row
    name: "gather-nd-pairs-and-per-sample",
    nodes: [
      node("GatherND", ["x", "pairs"], [], ["a"]), node("GatherND", ["x", "per_sample"], [], ["b"]),
      node("ReduceSum", ["a", "axis0"], [attrInt("keepdims", 0)], ["as"]), node("ReduceSum", ["b", "axis0"], [attrInt("keepdims", 0)], ["bs"]), node("Add", ["as", "bs"]),
    ],
    inputs: [{ name: "x", shape: [3, 4, 2] }],
    inits: [int64Tensor("pairs", [4, 2], [0, 1, 2, 3, -1, 0, 1, 1]), int64Tensor("per_sample", [3, 2], [0, 2, 1, 2, 2, 2]), i64("axis0", [0])],
  },
  {
    name: "scatternd-elements-mul",
    opset: 18,
    nodes: [node("ScatterND", ["x", "idx", "u"], [attrString("reduction", "mul")])],
    inputs: [{ name: "x", shape: [2, 3] }, { name: "u", shape: [2] }], inits: [int64Tensor("idx", [2, 2], [0, 2, 1, 1])],
  },
  {
    name: "if-then-branch-from-shapes",
    nodes: [...squeezeIf("s"), node("Tanh", ["s"])],
    inputs: [{ name: "x", shape: [2, 1, 3] }], inits: [int64Tensor("one", [], [1]), i64("axes1", [1]), w("w2", [3])],
  },
  {
    name: "if-else-branch-nested",
    nodes: [
      node("Shape", ["x"], [], ["shape"]), node("Gather", ["shape", "one"], [attrInt("axis", 0)], ["dim1"]), node("Equal", ["dim1", "one"], [], ["is1"]),
      node("Not", ["is1"], [], ["not1"]),
      node("If", ["is1"], [
        attrGraph("then_branch", branch("then", [node("Neg", ["x"], [], ["t_out"])], ["t_out"])),
        // the else branch holds another If, and a weight of the enclosing graph
        attrGraph("else_branch", branch("else", [
          node("Mul", ["x", "w2"], [], ["xw"]),
          node("If", ["not1"], [
            attrGraph("then_branch", branch("inner_then", [node("Exp", ["xw"], [], ["it_out"])], ["it_out"])),
            attrGraph("else_branch", branch("inner_else", [node("Identity", ["xw"], [], ["ie_out"])], ["ie_out"])),
          ], ["e_out"]),
        ], ["e_out"])),
      ], ["y"]),
    ],
    inputs: [{ name: "x", shape: [2, 4, 3] }], inits: [int64Tensor("one", [], [1]), w("w2", [3])],
  },
  {
    name: "attention-4d-gqa-float-mask",
    opset: 23,
    nodes: [node("Attention", ["q", "k", "v", "mask"], [attrFloat("scale", 0.3)])],
    inputs: [{ name: "q", shape: [2, 4, 5, 8] }, { name: "k", shape: [2, 2, 6, 8] }, { name: "v", shape: [2, 2, 6, 3] }],
    inits: [float32Tensor("mask", [5, 6], values(30, 8).map((x) => 2 * x))],
  },
  {
    name: "attention-3d-causal",
    opset: 23,
    nodes: [node("Attention", ["q", "k", "v"], [attrInt("q_num_heads", 4), attrInt("kv_num_heads", 4), attrInt("is_causal", 1)])],
    inputs: [{ name: "q", shape: [2, 5, 32] }, { name: "k", shape: [2, 5, 32] }, { name: "v", shape: [2, 5, 32] }],
  },
  {
    name: "attention-bool-mask-softcap",
    opset: 23,
    nodes: [node("Attention", ["q", "k", "v", "keep"], [attrFloat("softcap", 1.5)])],
    inputs: [{ name: "q", shape: [1, 2, 3, 4] }, { name: "k", shape: [1, 2, 5, 4] }, { name: "v", shape: [1, 2, 5, 4] }],
    inits: [boolTensor("keep", [1, 1, 3, 5], [1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1])],
  },
  {
    name: "isinf-isnan-castlike",
    // ±∞ where the divisor is 0, NaN = ∞ − ∞ there; counted as floats (CastLike to the input's type)
    nodes: [
      node("Div", ["x", "z"], [], ["d"]), node("Sub", ["d", "d"], [], ["n"]),
      node("IsInf", ["d"], [attrInt("detect_negative", 0)], ["pinf"]), node("IsInf", ["d"], [], ["inf"]), node("IsNaN", ["n"], [], ["nan"]),
      node("CastLike", ["pinf", "x"], [], ["a"]), node("CastLike", ["inf", "x"], [], ["b"]), node("CastLike", ["nan", "x"], [], ["c"]),
      node("Mul", ["b", "two"], [], ["b2"]), node("Mul", ["c", "four"], [], ["c4"]), node("Sum", ["a", "b2", "c4", "x"]),
    ],
    inputs: [{ name: "x", shape: [3, 4] }],
    inits: [float32Tensor("z", [4], Float32Array.of(0, 1, 0, 2)), float32Tensor("two", [], [2]), float32Tensor("four", [], [4])],
  },
  {
    name: "round-halves-to-even",
    nodes: [node("Mul", ["x", "k"], [], ["m"]), node("Round", ["m"], [], ["r"]), node("Round", ["ties"], [], ["t"]), node("Add", ["r", "t"])],
    inputs: [{ name: "x", shape: [2, 8] }],
    inits: [float32Tensor("k", [], [4]), float32Tensor("ties", [8], Float32Array.of(0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 3.5001))],
  },
  {
    name: "lp-normalization-p1-and-p2",
    nodes: [node("LpNormalization", ["x"], [attrInt("axis", 1), attrInt("p", 1)], ["a"]), node("LpNormalization", ["x"], [], ["b"]), node("Add", ["a", "b"])],
    inputs: [{ name: "x", shape: [2, 3, 5] }],
  },
  {
    name: "mean-variance-normalization",
    nodes: [node("MeanVarianceNormalization", ["x"], [], ["a"]), node("MeanVarianceNormalization", ["x"], [attrInts("axes", [1])], ["b"]), node("Add", ["a", "b"])],
    inputs: [{ name: "x", shape: [2, 3, 4, 5] }],
  },
  {
    name: "swish-opset24",
    opset: 24,
    nodes: [node("Swish", ["x"], [attrFloat("alpha", 1.7)])],
    inputs: [{ name: "x", shape: [3, 5] }],
  },
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
    name: "rms-normalization-opset23",
    opset: 23,
    nodes: [node("RMSNormalization", ["x", "scale"], [attrInt("axis", -2), attrFloat("epsilon", 1e-4)])],
    inputs: [{ name: "x", shape: [2, 3, 4, 5] }], inits: [w("scale", [4, 5], 7)],
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
  // Resampling and rearranging, as VAE decoders and upsampling blocks use them.
  {
    name: "resize-nearest-x2-half-pixel",
    opset: 13,
    nodes: [node("Resize", ["x", "", "scales"])],
    inputs: [{ name: "x", shape: [1, 2, 3, 4] }], inits: [float32Tensor("scales", [4], [1, 1, 2, 2])],
  },
  {
    name: "resize-linear-sizes-align-corners",
    opset: 13,
    nodes: [node("Resize", ["x", "", "", "sizes"], [attrString("mode", "linear"), attrString("coordinate_transformation_mode", "align_corners")])],
    inputs: [{ name: "x", shape: [2, 2, 3, 4] }], inits: [i64("sizes", [2, 2, 5, 7])],
  },
  {
    name: "resize-linear-pytorch-half-pixel-down-and-up",
    opset: 13,
    nodes: [node("Resize", ["x", "", "scales"], [attrString("mode", "linear"), attrString("coordinate_transformation_mode", "pytorch_half_pixel")])],
    inputs: [{ name: "x", shape: [1, 3, 6, 5] }], inits: [float32Tensor("scales", [4], [1, 1, 0.5, 1.6])],
  },
  {
    name: "resize-cubic-exclude-outside",
    opset: 13,
    nodes: [node("Resize", ["x", "", "scales"], [attrString("mode", "cubic"), attrInt("exclude_outside", 1), attrFloat("cubic_coeff_a", -0.5)])],
    inputs: [{ name: "x", shape: [1, 1, 5, 6] }], inits: [float32Tensor("scales", [4], [1, 1, 1.8, 0.5])],
  },
  {
    name: "resize-cubic-asymmetric",
    opset: 13,
    nodes: [node("Resize", ["x", "", "scales"], [attrString("mode", "cubic"), attrString("coordinate_transformation_mode", "asymmetric")])],
    inputs: [{ name: "x", shape: [1, 2, 4, 4] }], inits: [float32Tensor("scales", [4], [1, 1, 2, 3])],
  },
  {
    name: "resize-nearest-asymmetric-floor-opset11",
    opset: 11,
    nodes: [node("Resize", ["x", "roi", "scales"], [attrString("coordinate_transformation_mode", "asymmetric"), attrString("nearest_mode", "floor")])],
    inputs: [{ name: "x", shape: [1, 2, 6, 3] }], inits: [float32Tensor("roi", [0], []), float32Tensor("scales", [4], [1, 1, 0.5, 3])],
  },
  {
    name: "resize-nearest-ceil-tf-half-pixel",
    opset: 11,
    nodes: [node("Resize", ["x", "roi", "scales"], [attrString("coordinate_transformation_mode", "tf_half_pixel_for_nn"), attrString("nearest_mode", "ceil")])],
    inputs: [{ name: "x", shape: [1, 1, 4, 5] }], inits: [float32Tensor("roi", [0], []), float32Tensor("scales", [4], [1, 1, 2, 0.6])],
  },
  {
    name: "resize-opset10-nearest",
    opset: 10,
    nodes: [node("Resize", ["x", "scales"])],
    inputs: [{ name: "x", shape: [1, 2, 3, 4] }], inits: [float32Tensor("scales", [4], [1, 1, 2, 0.5])],
  },
  {
    name: "resize-opset18-axes-not-larger",
    opset: 18,
    nodes: [node("Resize", ["x", "", "", "sizes"], [attrInts("axes", [2, 3]), attrString("keep_aspect_ratio_policy", "not_larger"), attrString("mode", "linear")])],
    inputs: [{ name: "x", shape: [1, 2, 4, 6] }], inits: [i64("sizes", [9, 9])],
  },
  {
    name: "upsample-opset9-linear",
    opset: 9,
    nodes: [node("Upsample", ["x", "scales"], [attrString("mode", "linear")])],
    inputs: [{ name: "x", shape: [1, 2, 3, 4] }], inits: [float32Tensor("scales", [4], [1, 1, 2, 2])],
  },
  {
    name: "depth-to-space-dcr-crd-space-to-depth",
    opset: 13,
    nodes: [
      node("DepthToSpace", ["x"], [attrInt("blocksize", 2)], ["d"]),
      node("SpaceToDepth", ["d"], [attrInt("blocksize", 2)], ["s"]),
      node("DepthToSpace", ["s"], [attrInt("blocksize", 2), attrString("mode", "CRD")]),
    ],
    inputs: [{ name: "x", shape: [2, 8, 3, 2] }],
  },
  {
    name: "einsum-attention-scores-and-outer",
    opset: 13,
    nodes: [
      node("Einsum", ["q", "k"], [attrString("equation", "bhqd, bhkd -> bhqk")], ["s"]),
      node("Einsum", ["s", "w"], [attrString("equation", "...k,d->...kd")], ["o"]),
      node("Einsum", ["o"], [attrString("equation", "bhqkd->bhdq")]),
    ],
    inputs: [{ name: "q", shape: [2, 2, 3, 4] }, { name: "k", shape: [2, 2, 5, 4] }], inits: [w("w", [3])],
  },
  {
    name: "einsum-three-operands-implicit-output",
    opset: 13,
    nodes: [
      node("Einsum", ["a", "b", "v"], [attrString("equation", "ij,jk,kl->il")], ["m"]),
      node("Einsum", ["m", "b"], [attrString("equation", "ij,kl")]),
    ],
    inputs: [{ name: "a", shape: [3, 4] }, { name: "v", shape: [5, 2] }], inits: [w("b", [4, 5])],
  },
  {
    name: "average-pool-padded-exclusive",
    nodes: [node("AveragePool", ["x"], [attrInts("kernel_shape", [3, 2]), attrInts("strides", [2, 1]), attrInts("pads", [1, 0, 1, 1])])],
    inputs: [{ name: "x", shape: [2, 3, 7, 5] }],
  },
  {
    name: "average-pool-count-include-pad-same",
    nodes: [node("AveragePool", ["x"], [attrInts("kernel_shape", [3, 3]), attrInts("strides", [2, 2]), attrString("auto_pad", "SAME_UPPER"), attrInt("count_include_pad", 1)])],
    inputs: [{ name: "x", shape: [1, 2, 6, 5] }],
  },
  {
    name: "max-pool-padded-dilated-global",
    nodes: [
      node("MaxPool", ["x"], [attrInts("kernel_shape", [2, 3]), attrInts("pads", [1, 1, 0, 1]), attrInts("dilations", [2, 1])], ["m"]),
      node("GlobalAveragePool", ["m"], [], ["g"]),
      node("GlobalMaxPool", ["x"], [], ["h"]),
      node("Add", ["g", "h"]),
    ],
    inputs: [{ name: "x", shape: [2, 3, 6, 5] }],
  },
  {
    name: "activations-elu-selu-celu-mish-softsign-thresholded-prelu",
    opset: 18,
    nodes: [
      node("Elu", ["x"], [attrFloat("alpha", 0.7)], ["a"]),
      node("Selu", ["a"], [], ["b"]),
      node("Celu", ["x"], [attrFloat("alpha", 1.5)], ["c"]),
      node("Mish", ["c"], [], ["d"]),
      node("Softsign", ["d"], [], ["e"]),
      node("ThresholdedRelu", ["x"], [attrFloat("alpha", 0.3)], ["f"]),
      node("PRelu", ["x", "slope"], [], ["g"]),
      node("Sign", ["x"], [], ["h"]),
      node("Atan", ["x"], [], ["i"]),
      node("Sum", ["b", "e", "f", "g", "h", "i"]),
    ],
    inputs: [{ name: "x", shape: [2, 3, 4] }], inits: [w("slope", [3, 1])],
  },
  {
    name: "cumsum-exclusive-reverse-trilu-reduce-logsumexp-l1",
    opset: 14,
    nodes: [
      node("CumSum", ["x", "axis"], [attrInt("exclusive", 1), attrInt("reverse", 1)], ["c"]),
      node("CumSum", ["c", "axis0"], [], ["c2"]),
      node("Trilu", ["c2", "k"], [attrInt("upper", 0)], ["t"]),
      node("ReduceLogSumExp", ["t"], [attrInts("axes", [1]), attrInt("keepdims", 1)], ["l"]),
      node("ReduceL1", ["x"], [attrInts("axes", [1]), attrInt("keepdims", 1)], ["m"]),
      node("Add", ["l", "m"]),
    ],
    inputs: [{ name: "x", shape: [2, 4, 5] }],
    inits: [int64Tensor("axis", [], [2]), int64Tensor("axis0", [], [0]), int64Tensor("k", [], [1])],
  },
];

for (const c of CASES) test(`${c.name}: importer = onnxruntime-node (and lowered)`, () => check(c));

test("what the importer does not do is a one-line error naming the node: crop-and-resize, antialiased downsampling, ceil_mode, MaxPool indices, an Einsum diagonal or mismatched extents", () => {
  const refuse = (nodes: NodeProto[], inits: TensorProto[], opset: number, want: RegExp) => {
    const m = importOnnx(decodeOnnx(encodeModel({
      opsetVersion: opset, irVersion: 8,
      graph: { name: "g", nodes, initializers: inits, inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [1, 2, 4, 4] }], outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [] }] },
    }), { file: "refused.onnx" }));
    assert.throws(() => m.apply(m.paramArrays(), [np.zeros([1, 2, 4, 4])]), (e: Error) => e instanceof OnnxImportError && !e.message.includes("\n") && want.test(e.message));
  };
  const scales = (v: number[]) => float32Tensor("scales", [4], Float32Array.from(v));
  refuse([node("Resize", ["x", "", "scales"], [attrString("coordinate_transformation_mode", "tf_crop_and_resize")])], [scales([1, 1, 2, 2])], 13,
    /node "\/Resize_y" \(Resize\): coordinate_transformation_mode "tf_crop_and_resize" is not supported/);
  refuse([node("Resize", ["x", "", "scales"], [attrString("mode", "linear"), attrInt("antialias", 1)])], [scales([1, 1, 0.5, 0.5])], 18,
    /antialiased downsampling/);
  refuse([node("Resize", ["x", "", "scales"])], [scales([1, 1, 0, 2])], 13, /scale 0 of axis 2 is not positive/);
  refuse([node("MaxPool", ["x"], [attrInts("kernel_shape", [2, 2]), attrInt("ceil_mode", 1)])], [], 13, /\(MaxPool\): ceil_mode 1 is not supported/);
  refuse([node("ScatterND", ["x", "idx", "u"], [attrString("reduction", "add")])], [int64Tensor("idx", [2, 2], [0, 1, 0, 1]), w("u", [2, 4, 4])], 18,
    /\(ScatterND\): reduction "add" with an index repeated is not supported$/);
  refuse([node("ScatterND", ["x", "idx", "u"])], [int64Tensor("idx", [1, 2], [0, 2]), w("u", [1, 4, 4])], 13, /\(ScatterND\): index 2 is out of range for axis 1 of extent 2$/);
  refuse([node("ReduceSum", ["x"], [attrInt("keepdims", 0)], ["sum"]), node("Greater", ["sum", "zero"], [], ["pos"]),
    node("If", ["pos"], [attrGraph("then_branch", branch("t", [node("Neg", ["x"], [], ["a"])], ["a"], 4)), attrGraph("else_branch", branch("e", [node("Exp", ["x"], [], ["b"])], ["b"], 4))])],
  [float32Tensor("zero", [], [0])], 13, /\(If\): the condition depends on the model's inputs or parameters; only a condition computable from shapes and constants is supported$/);
  refuse([node("MaxPool", ["x"], [attrInts("kernel_shape", [2, 2])], ["y", "idx"])], [], 13, /the Indices output is not supported/);
  refuse([node("Einsum", ["x"], [attrString("equation", "biik->bk")])], [], 13, /a label repeated within operand "biik" \(a diagonal\) is not supported/);
  refuse([node("Einsum", ["x", "m"], [attrString("equation", "bchw,hk->bck")])], [w("m", [3, 5])], 13, /\(Einsum\): label h has extent 4 in one operand and 3 in operand 1$/);
});

test("the README's list of supported ONNX ops is the importer's", () => {
  const readme = readFileSync("README.md", "utf8");
  const list = readme.slice(readme.indexOf("**Supported ONNX ops**"), readme.indexOf("(`src/onnx/graph.ts`"));
  const listed = list.split("\n").slice(1).join(" ").split(/\s+/).filter(Boolean);
  assert.deepEqual(listed, [...SUPPORTED_OPS]);
});

test("the resampling, pooling, Einsum, ScatterND, GatherElements and GatherND ops are differentiable: the JVP through a chain of them matches central differences", () => {
  const m = importOnnx(decodeOnnx(encodeModel({
    opsetVersion: 18, irVersion: 8,
    graph: {
      name: "chain",
      nodes: [
        node("Resize", ["x", "", "scales"], [attrString("mode", "cubic")], ["r"]),
        node("AveragePool", ["r"], [attrInts("kernel_shape", [3, 3]), attrInts("pads", [1, 1, 1, 1])], ["p"]),
        node("Elu", ["p"], [], ["e"]),
        node("DepthToSpace", ["e"], [attrInt("blocksize", 2)], ["d"]),
        node("Einsum", ["d", "w"], [attrString("equation", "bchw,wk->bchk")], ["s"]),
        node("Mish", ["s"], [], ["mi"]), // [2, 1, 12, 3]
        // sample 0 multiplied by tanh of sample 1: ScatterND's gradient reaches both data and updates
        node("Slice", ["mi", "one", "two", "zero"], [], ["sl"]), node("Tanh", ["sl"], [], ["th"]),
        node("ScatterND", ["mi", "row0", "th"], [attrString("reduction", "mul")], ["sc"]),
        // torch.gather of two of the three entries of every row, then the same rows of every sample (GatherND)
        node("GatherElements", ["sc", "pick"], [attrInt("axis", 3)], ["ge"]),
        node("GatherND", ["ge", "rows"]),
      ],
      initializers: [
        float32Tensor("scales", [4], Float32Array.of(1, 1, 1.5, 2)), w("w", [20, 3]), i64("one", [1]), i64("two", [2]), i64("zero", [0]), int64Tensor("row0", [1, 1], [0]),
        int64Tensor("pick", [2, 1, 12, 2], globalThis.Array.from({ length: 48 }, (_: unknown, i: number) => (i * 7) % 3)), int64Tensor("rows", [2, 3, 3], [0, 0, 2, 0, 0, 7, 0, 0, 11, 1, 0, 2, 1, 0, 7, 1, 0, 11]),
      ],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2, 4, 4, 5] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [] }],
    },
  }), { file: "chain.onnx" }));
  const x0 = values(160, 1), dx = values(160, 2);
  const f = (x: Array) => m.apply(m.paramArrays(), [x])[0];
  const [out, tan] = jvp(f, [np.array(x0, { shape: [2, 4, 4, 5] })], [np.array(dx, { shape: [2, 4, 4, 5] })]);
  out.dispose();
  const eps = 1e-2;
  const at = (sign: number) => f(np.array(x0.map((v, i) => v + sign * eps * dx[i]), { shape: [2, 4, 4, 5] })).dataSync() as Float32Array;
  const [plus, minus] = [at(1), at(-1)];
  const t = tan.dataSync() as Float32Array;
  let num = 0, den = 0;
  for (let i = 0; i < t.length; i++) { num += (t[i] - (plus[i] - minus[i]) / (2 * eps)) ** 2; den += t[i] ** 2; }
  assert.ok(Math.sqrt(num / den) < 1e-3, `relative error ${Math.sqrt(num / den).toExponential(2)}`);
});

test("an absurd size computed in a graph is a one-line error naming the node, before it is allocated", () => {
  const run = (nodes: NodeProto[], inits: TensorProto[]) => {
    const m = importOnnx(decodeOnnx(encodeModel({
      opsetVersion: 17, irVersion: 8,
      graph: { name: "g", nodes, initializers: inits, inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [1, 4] }], outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [] }] },
    }), { file: "huge.onnx" }));
    return () => m.apply(m.paramArrays(), [np.zeros([1, 4])]);
  };
  const oneLine = (f: () => unknown, want: RegExp) => assert.throws(f, (e: Error) => e instanceof OnnxImportError && !e.message.includes("\n") && want.test(e.message));
  oneLine(run([node("ConstantOfShape", ["s"], [], ["z"]), node("Add", ["x", "z"])], [i64("s", [1000000000])]),
    /node "\/ConstantOfShape_z" \(ConstantOfShape\): ConstantOfShape of shape \[1000000000\] \(1000000000 elements\) is larger than the 16777216 supported/);
  oneLine(run([node("Expand", ["x", "s"])], [i64("s", [100000, 100000, 4])]), /node "\/Expand_y" \(Expand\): output 0 of shape \[100000,100000,4\] .* is larger than the 4294967296 supported/);
  oneLine(run([node("Range", ["a", "b", "d"])], [int64Tensor("a", [], [0]), int64Tensor("b", [], [2 ** 40]), int64Tensor("d", [], [1])]), /\(Range\): Range of shape \[1099511627776\]/);
});

test("Conv and ConvTranspose are differentiable where training needs them: value and grad (input and weights) lowered to ONNX equal jax-js's, and match central differences", async () => {
  // strided, dilated, grouped, asymmetrically padded: the transposes have lhs dilation and negative pads
  const m = importOnnx(decodeOnnx(encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "convs",
      nodes: [
        node("Conv", ["x", "w1", "b1"], [attrInts("strides", [2, 1]), attrInts("dilations", [1, 2]), attrInts("pads", [1, 0, 2, 1]), attrInt("group", 2)], ["c1"]),
        node("Tanh", ["c1"], [], ["t"]),
        node("ConvTranspose", ["t", "w2"], [attrInts("strides", [2, 2]), attrInts("pads", [0, 1, 1, 0]), attrInt("group", 2)], ["c2"]),
        node("Conv", ["c2", "w3"], [attrInts("strides", [3, 2])]),
      ],
      initializers: [w("w1", [4, 2, 3, 2]), w("b1", [4]), w("w2", [4, 1, 3, 3]), w("w3", [3, 2, 2, 2])],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2, 4, 9, 7] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [] }],
    },
  }), { file: "convs.onnx" }));
  const names = Object.keys(m.params).sort();
  const shapes = [...names.map((k) => [...m.params[k].shape]), [2, 4, 9, 7]];
  const r = (y: Array) => np.array(values(prod(y.shape), 11), { shape: y.shape });
  const loss = (...xs: Array[]) => {
    const p = Object.fromEntries(names.map((k, i) => [k, xs[i]]));
    const y = m.apply(p, [xs[names.length]])[0];
    return y.mul(r(y.ref)).sum();
  };
  const argnums = shapes.map((_, i) => i);
  const valueGrad = (...xs: Array[]) => {
    const [v, g] = valueAndGrad(loss, { argnums } as never)(...xs) as unknown as [Array, Array[]];
    return [v, ...g];
  };
  const point = shapes.map((s, i) => values(prod(s), 20 + i).map((v) => 0.5 * v));
  const arrays = () => point.map((d, i) => np.array(d, { shape: shapes[i] }));
  const eager = valueGrad(...arrays()).map((a) => a.dataSync() as Float32Array);
  const lowered = lowerFunction(valueGrad, shapes.map((s) => avalSpec(s)) as never);
  const session = await ort.InferenceSession.create(lowered.model);
  const feeds = Object.fromEntries(lowered.inputs.map((spec, i) => [spec.name, new ort.Tensor("float32", point[i], [...spec.shape])]));
  const outs = await session.run(feeds);
  await session.release();
  assert.ok((lowered.opCounts.Conv ?? 0) >= 3, `the convs are ONNX Conv nodes (${JSON.stringify(lowered.opCounts)})`);
  lowered.outputs.forEach((spec, i) => {
    const got = outs[spec.name].data as Float32Array, want = eager[i];
    const scale = Math.max(...want.map(Math.abs)), e = got.reduce((mx, v, j) => Math.max(mx, Math.abs(v - want[j])), 0);
    assert.ok(e <= 1e-4 * scale + 1e-6, `output ${i}: max |Δ| ${e.toExponential(2)} (scale ${scale.toFixed(3)})`);
  });
  // the gradient against central differences along one direction of every argument
  const dir = shapes.map((s, i) => values(prod(s), 40 + i));
  const eps = 1e-2;
  const at = (sign: number) => (loss(...point.map((d, i) => np.array(d.map((v, j) => v + sign * eps * dir[i][j]), { shape: shapes[i] }))).dataSync() as Float32Array)[0];
  const fd = (at(1) - at(-1)) / (2 * eps);
  const dot = eager.slice(1).reduce((acc, g, i) => acc + g.reduce((a, v, j) => a + v * dir[i][j], 0), 0);
  assert.ok(Math.abs(dot - fd) < 1e-3 * Math.abs(fd), `⟨grad, d⟩ ${dot} against the central difference ${fd}`);
});

test("GatherElements and GatherND with indices known at run time equal onnxruntime's, lowered as well; an index out of range gives NaN", async () => {
  const run = async (op: string, attrs: Attribute[], xShape: number[], iShape: number[], idx: number[], yShape: number[]) => {
    const model = encodeModel({
      opsetVersion: 17, irVersion: 8,
      graph: {
        name: op, nodes: [node(op, ["x", "i"], attrs)], initializers: [],
        inputs: [{ name: "x", elemType: DataType.FLOAT, shape: xShape }, { name: "i", elemType: DataType.INT64, shape: iShape }],
        outputs: [{ name: "y", elemType: DataType.FLOAT, shape: yShape }],
      },
    });
    const x = values(prod(xShape), 5);
    const session = await ort.InferenceSession.create(model);
    const want = (await session.run({ x: new ort.Tensor("float32", x, xShape), i: new ort.Tensor("int64", BigInt64Array.from(idx, BigInt), iShape) })).y.data as Float32Array;
    await session.release();
    const m = importOnnx(decodeOnnx(model, { file: `${op}.onnx` }));
    const f = (a: Array, b: Array) => m.apply({}, [a, b.astype(np.int32)])[0];
    const got = f(np.array(x, { shape: xShape }), np.array(Float32Array.from(idx), { shape: iShape })).dataSync() as Float32Array;
    assert.deepEqual([...got], [...want], op);
    const lowered = lowerFunction(f, [avalSpec(xShape), avalSpec(iShape)] as never);
    const s2 = await ort.InferenceSession.create(lowered.model);
    const low = (await s2.run({ [lowered.inputs[0].name]: new ort.Tensor("float32", x, xShape), [lowered.inputs[1].name]: new ort.Tensor("float32", Float32Array.from(idx), iShape) }))[lowered.outputs[0].name].data as Float32Array;
    await s2.release();
    assert.deepEqual([...low], [...want], `${op} lowered`);
    return (bad: number[]) => f(np.array(x, { shape: xShape }), np.array(Float32Array.from(bad), { shape: iShape })).dataSync() as Float32Array;
  };
  const ge = await run("GatherElements", [attrInt("axis", 1)], [2, 4, 3], [2, 2, 3], [3, 0, -1, 1, 2, 0, 0, 3, -4, 2, 1, 1], [2, 2, 3]);
  const geBad = ge([3, 0, 4, 1, 2, 0, 0, 3, -5, 2, 1, 1]); // 4 and −5 are out of range for an axis of 4
  assert.deepEqual([...geBad].map((v, i) => (Number.isNaN(v) ? i : -1)).filter((i) => i >= 0), [2, 8]);
  const gnd = await run("GatherND", [], [3, 4, 2], [5, 2], [0, 1, 2, 3, -1, 0, 1, -1, 2, 2], [5, 2]);
  const gndBad = gnd([0, 1, 3, 0, -1, 0, 1, 4, 2, 2]); // row 3 and column 4 are out of range
  assert.deepEqual([...gndBad].map((v, i) => (Number.isNaN(v) ? Math.floor(i / 2) : -1)).filter((i) => i >= 0), [1, 1, 3, 3]);
});

test("Gather with indices known at run time (negative ones too) along a middle axis equals onnxruntime's, lowered as well", async () => {
  const model = encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "gather_runtime",
      nodes: [node("Gather", ["x", "i"], [attrInt("axis", 1)])],
      initializers: [],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2, 5, 3] }, { name: "i", elemType: DataType.INT64, shape: [2, 2] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2, 2, 2, 3] }],
    },
  });
  const x = values(30, 4), idx = [4, 0, -1, 2];
  const session = await ort.InferenceSession.create(model);
  const want = (await session.run({ x: new ort.Tensor("float32", x, [2, 5, 3]), i: new ort.Tensor("int64", BigInt64Array.from(idx, BigInt), [2, 2]) })).y.data as Float32Array;
  await session.release();
  const m = importOnnx(decodeOnnx(model, { file: "gather_runtime.onnx" }));
  const f = (a: Array, b: Array) => m.apply({}, [a, b.astype(np.int32)])[0];
  const got = f(np.array(x, { shape: [2, 5, 3] }), np.array(Float32Array.from(idx), { shape: [2, 2] })).dataSync() as Float32Array;
  assert.deepEqual([...got], [...want]);
  const lowered = lowerFunction(f, [avalSpec([2, 5, 3]), avalSpec([2, 2])] as never);
  const s2 = await ort.InferenceSession.create(lowered.model);
  const low = (await s2.run({ [lowered.inputs[0].name]: new ort.Tensor("float32", x, [2, 5, 3]), [lowered.inputs[1].name]: new ort.Tensor("float32", Float32Array.from(idx), [2, 2]) }))[lowered.outputs[0].name].data as Float32Array;
  await s2.release();
  assert.deepEqual([...low], [...want]);
  // an index out of range gives NaN (onnxruntime refuses it), not a silent row of zeros
  const bad = [4, 5, 0, -6]; // 5 and −6 (−6 + 5 = −1) are out of range for an axis of 5
  const got2 = f(np.array(x, { shape: [2, 5, 3] }), np.array(Float32Array.from(bad), { shape: [2, 2] })).dataSync() as Float32Array;
  // y[a, p, k] = x[a, bad[p], k] (p the flat index position), or NaN
  const expect = globalThis.Array.from({ length: 24 }, (_: unknown, i: number) => {
    const a = Math.floor(i / 12), p = Math.floor(i / 3) % 4, k = i % 3, j = bad[p];
    return j >= 0 && j < 5 ? x[a * 15 + j * 3 + k] : NaN;
  });
  assert.deepEqual([...got2], expect);
});

test("Attention is differentiable: its JVP (shared heads, causal, a float mask, softcap) matches central differences", () => {
  const m = importOnnx(decodeOnnx(encodeModel({
    opsetVersion: 23, irVersion: 11,
    graph: {
      name: "attn",
      nodes: [node("Attention", ["q", "k", "v", "mask"], [attrInt("is_causal", 1), attrFloat("softcap", 2)])],
      initializers: [float32Tensor("mask", [4, 4], values(16, 9))],
      inputs: [{ name: "q", elemType: DataType.FLOAT, shape: [1, 4, 4, 3] }, { name: "k", elemType: DataType.FLOAT, shape: [1, 2, 4, 3] }, { name: "v", elemType: DataType.FLOAT, shape: [1, 2, 4, 3] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [] }],
    },
  }), { file: "attn.onnx" }));
  const shapes = [[1, 4, 4, 3], [1, 2, 4, 3], [1, 2, 4, 3]];
  const x0 = shapes.map((s, i) => values(prod(s), 30 + i)), dx = shapes.map((s, i) => values(prod(s), 40 + i));
  const f = (q: Array, k: Array, v: Array) => m.apply(m.paramArrays(), [q, k, v])[0];
  const arrays = (d: Float32Array[]) => d.map((a, i) => np.array(a, { shape: shapes[i] }));
  const [out, tan] = jvp(f as never, arrays(x0) as never, arrays(dx) as never) as unknown as [Array, Array];
  out.dispose();
  const eps = 1e-3;
  const at = (sign: number) => (f as (...a: Array[]) => Array)(...arrays(x0.map((a, i) => a.map((v, j) => v + sign * eps * dx[i][j])))).dataSync() as Float32Array;
  const [plus, minus] = [at(1), at(-1)];
  const t = tan.dataSync() as Float32Array;
  let num = 0, den = 0;
  for (let i = 0; i < t.length; i++) { num += (t[i] - (plus[i] - minus[i]) / (2 * eps)) ** 2; den += t[i] ** 2; }
  assert.ok(Math.sqrt(num / den) < 1e-3, `relative error ${Math.sqrt(num / den).toExponential(2)}`);
});

test("If branches nested beyond 16 levels are a one-line read error, not a stack overflow", () => {
  const leaf = branch("leaf", [node("Neg", ["x"], [], ["o"])], ["o"]);
  let g = leaf;
  for (let k = 0; k < 40; k++) g = branch(`level${k}`, [node("If", ["c"], [attrGraph("then_branch", g), attrGraph("else_branch", leaf)], ["o"])], ["o"]);
  const bytes = encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: { ...g, name: "deep", initializers: [boolTensor("c", [], [1])], inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2] }] },
  });
  assert.throws(() => decodeOnnx(bytes, { file: "deep.onnx" }), (e: Error) => e instanceof OnnxReadError && /subgraphs nested more than 16 deep/.test(e.message) && !e.message.includes("\n"));
});
