import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, nn, scipySpecial, jvp, valueAndGrad, tree, type Array } from "@jax-js/jax";
import { type MlpParams } from "../../src/models/mlp.ts";
import { mlpStudent } from "../../src/gmm/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { smallStudent, randomStudentParams } from "../studentFixture.ts";
import { OnnxFunction, OnnxProgram, type HostTensor } from "../../src/executor/onnxRun.ts";
import { DataType, attrFloat, attrInts, attrString, encodeModel, float32Tensor, int64Tensor } from "../../src/executor/onnxProto.ts";
import { lowerFunction, avalSpec, UnsupportedPrimitiveError } from "../../src/executor/lower.ts";
import { quantizeColumns, biasNextToMatMul } from "../../src/executor/inferenceGraph.ts";
import { layerNorm } from "../../src/models/layers.ts";
import { rmsNorm } from "../../src/models/transformer.ts";
import * as ort from "onnxruntime-node";

const cfg = smallStudent;
const B = 4;


const params = randomStudentParams();
const [paramLeaves, paramDef] = tree.flatten(params as never) as unknown as [Array[], Parameters<typeof tree.unflatten>[0]];
const nParams = paramLeaves.length;
const unflattenParams = (xs: Array[]) => tree.unflatten(paramDef, xs) as MlpParams;

const u = np.array(normal(key(1), B * cfg.dim)).reshape([B, cfg.dim]);
const t = np.array([0.3, 0.8, 1.2, 1.5]).reshape([B, 1]);
const cond = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]);
const w = np.array([[4], [4.5], [5], [1]]);
const vu = np.array(normal(key(2), B * cfg.dim)).reshape([B, cfg.dim]);
const vt = np.array([0.2, -0.5, 0.4, 0.1]).reshape([B, 1]);

const host = (a: Array): HostTensor => ({ data: a.ref.dataSync() as Float32Array, shape: a.shape });

/** ‖a − b‖ / ‖b‖. */
function relErr(a: Float32Array, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let err = 0, ref = 0;
  for (let i = 0; i < a.length; i++) {
    err += (a[i] - b[i]) ** 2;
    ref += b[i] ** 2;
  }
  return Math.sqrt(err / Math.max(ref, 1e-30));
}

/** Runs `f` on ONNX Runtime and eagerly on jax-js; every output must agree to `tol` (relative). */
async function assertAgrees(f: (...xs: Array[]) => unknown, inputs: Array[], tol = 1e-5): Promise<OnnxFunction> {
  const onnx = new OnnxFunction(f as never);
  const got = await onnx.run(inputs.map(host));
  const want = tree.leaves(f(...inputs.map((x) => x.ref)) as never) as Array[];
  assert.equal(got.length, want.length);
  want.forEach((ref, i) => {
    assert.deepEqual(got[i].shape, ref.shape, `output ${i} shape`);
    const e = relErr(got[i].data, ref.dataSync());
    assert.ok(e <= tol, `output ${i} [${ref.shape}]: relative error ${e.toExponential(2)} > ${tol}`);
  });
  return onnx;
}

async function opCounts(onnx: OnnxFunction, inputs: Array[]) {
  return (await onnx.program(inputs.map((x) => x.shape))).program.opCounts;
}

test("ONNX forward of the student agrees with jax-js; sessions are cached per input shapes", async () => {
  const forward = (...xs: Array[]) => {
    const [uu, tt, c, ww] = xs.slice(nParams);
    return mlpStudent(unflattenParams(xs.slice(0, nParams)), uu, tt, c, ww);
  };
  const inputs = [...paramLeaves, u, t, cond, w];
  const onnx = await assertAgrees(forward, inputs);
  const counts = await opCounts(onnx, inputs);
  assert.equal(counts.Expand ?? 0, 0, "broadcasts stay virtual");
  assert.equal(counts.MatMul, 2 + 2 + 1 + 1 + 3 * cfg.depth + 1 + 1 + 1, "one MatMul per linear layer");

  await onnx.run(inputs.map(host));
  assert.equal(onnx.cacheSize, 1, "same shapes reuse the session");
  const half = (a: Array) => a.ref.slice([0, 2]);
  const smaller = [...paramLeaves, half(u), half(t), half(cond), half(w)];
  const got = await onnx.run(smaller.map(host));
  assert.equal(onnx.cacheSize, 2, "new shapes get a new session");
  const want = forward(...smaller.map((x) => x.ref));
  want.forEach((ref, i) => assert.ok(relErr(got[i].data, ref.dataSync()) <= 1e-5, `batch-2 output ${i}`));
  await onnx.dispose();
});

test("ONNX JVP of the student along (v_u, v_t) agrees with jax-js", async () => {
  const tangent = (...xs: Array[]) => {
    const p = unflattenParams(xs.slice(0, nParams));
    const [uu, tt, c, ww, du, dt] = xs.slice(nParams);
    const F = (a: Array, b: Array) => {
      const [f, lv] = mlpStudent(tree.ref(p), a, b, c.ref, ww.ref);
      lv.dispose();
      return f;
    };
    const out = jvp(F, [uu, tt], [du, dt]);
    tree.dispose([p, c, ww] as never);
    return out;
  };
  const inputs = [...paramLeaves, u, t, cond, w, vu, vt];
  const onnx = await assertAgrees(tangent, inputs);
  const counts = await opCounts(onnx, inputs);
  assert.equal(counts.Expand ?? 0, 0, "broadcasts stay virtual");
  // jax-js multiplies zero tangents of the closed-over parameters too; those dots fold away.
  assert.ok(counts.MatMul < 36, `zero tangents folded: ${counts.MatMul} MatMuls`);
  await onnx.dispose();
});

test("ONNX value_and_grad of a scalar loss w.r.t. the student's parameters agrees with jax-js", async () => {
  const loss = (p: MlpParams, uu: Array, tt: Array, c: Array, ww: Array) => {
    const [F, logvar] = mlpStudent(p, uu, tt, c, ww);
    return F.mul(F.ref).sum().add(np.exp(logvar).sum());
  };
  const valueGrad = (...xs: Array[]) => {
    const [uu, tt, c, ww] = xs.slice(nParams);
    const [value, grads] = valueAndGrad((p: MlpParams) => loss(p, uu.ref, tt.ref, c.ref, ww.ref))(unflattenParams(xs.slice(0, nParams)));
    tree.dispose([uu, tt, c, ww] as never);
    return [value, grads];
  };
  const inputs = [...paramLeaves, u, t, cond, w];
  const onnx = await assertAgrees(valueGrad, inputs);
  const counts = await opCounts(onnx, inputs);
  assert.equal(counts.Expand ?? 0, 0, "broadcasts stay virtual");
  await onnx.dispose();
});

test("ONNX lowering of slicing, padding, flips, where/compare, max, erfc, tanh, softmax (and their gradients)", async () => {
  const body = (x: Array, y: Array): Array[] => {
    const padded = np.pad(x.ref.slice([], [1, 5]), [[0, 0], [2, 1]]);
    const flipped = np.flip(padded, 1);
    const leaky = np.where(flipped.ref.greater(0), flipped.ref, flipped.mul(0.1));
    const rowMax = np.max(leaky.ref, 1);
    const smooth = np.log(np.exp(x.ref).add(1)).add(np.maximum(x.ref, y.ref)).add(np.minimum(x.ref, y.ref.mul(2)));
    const stacked = np.concatenate([x.ref, y.reshape([1, 8])], 0).sum(0);
    const mask = x.ref.greater(0).astype(np.float32);
    return [rowMax, np.tanh(leaky), scipySpecial.erfc(x.ref), smooth, nn.softmax(x.ref, -1), stacked, np.clip(x, -0.5, 0.5).mul(mask)];
  };
  const lossOf = (x: Array, y: Array) => body(x, y).map((o, i) => o.mul(o.ref).sum().mul(i + 1)).reduce((a, b) => a.add(b));
  const x = np.array(normal(key(5), 24)).reshape([3, 8]);
  const y = np.array(normal(key(6), 8));
  await (await assertAgrees(body as never, [x, y])).dispose();
  const grads = (a: Array, b: Array) => valueAndGrad(lossOf, { argnums: [0, 1] } as never)(a, b);
  await (await assertAgrees(grads as never, [x, y])).dispose();
});

test("an unknown primitive fails with an error naming it", async () => {
  const sorted = (x: Array) => np.sort(x.mul(2));
  assert.throws(() => lowerFunction(sorted, [avalSpec([4, 5])] as never), (e: unknown) => {
    assert.ok(e instanceof UnsupportedPrimitiveError);
    assert.equal(e.primitive, "sort");
    assert.match(e.message, /unsupported jax-js primitive "sort"/);
    return true;
  });
  const onnx = new OnnxFunction(sorted as never);
  await assert.rejects(onnx.run([{ data: new Float32Array(20), shape: [4, 5] }]), /primitive "sort"/);
  assert.equal(onnx.cacheSize, 0, "a failed lowering is not cached");
});

test("the protobuf encoder writes ints, float and string attributes and initializers ONNX Runtime reads", async () => {
  // y = Transpose(Pad(LeakyRelu(x, alpha = 0.5) + W, [0, 1, 0, 1], mode = "reflect"), perm = [1, 0])
  const model = encodeModel({
    graph: {
      name: "proto",
      nodes: [
        { opType: "LeakyRelu", inputs: ["x"], outputs: ["a"], attributes: [attrFloat("alpha", 0.5)] },
        { opType: "Add", inputs: ["a", "W"], outputs: ["b"] },
        { opType: "Pad", inputs: ["b", "pads"], outputs: ["c"], attributes: [attrString("mode", "reflect")] },
        { opType: "Transpose", inputs: ["c"], outputs: ["y"], attributes: [attrInts("perm", [1, 0])] },
      ],
      initializers: [float32Tensor("W", [2, 3], [10, 20, 30, 40, 50, 60]), int64Tensor("pads", [4], [0, 1, 0, 1])],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2, 3] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [5, 2] }],
    },
  });
  const inputs = [{ name: "x", shape: [2, 3], dtype: "float32" as const }];
  const outputs = [{ name: "y", shape: [5, 2], dtype: "float32" as const }];
  const program = await OnnxProgram.create({ model, inputs, outputs, opCounts: {}, matmulFlops: 0 });
  const [y] = await program.run([{ data: new Float32Array([-2, 1, 4, -6, 0, 8]), shape: [2, 3] }]);
  // b = [[9, 21, 34], [37, 50, 68]]; reflect-padded columns: [b1, b0, b1, b2, b1].
  assert.deepEqual(y.shape, [5, 2]);
  assert.deepEqual(globalThis.Array.from(y.data), [21, 50, 9, 37, 21, 50, 34, 68, 21, 50]);
  await program.release();
});

test("lowering counts the matrix products' FLOPs (2·M·N·K); weights the outputs do not need stay out of the file", () => {
  const w = np.array(normal(key(4), 3 * 5)).reshape([3, 5]);
  const unused = np.array(normal(key(5), 5 * 64)).reshape([5, 64]);
  const f = (x: Array, y: Array) => {
    const h = np.matmul(x, w.ref); // [4, 3]·[3, 5]: 2·4·5·3 = 120
    np.matmul(h.ref, unused.ref).dispose(); // computed, not returned
    return np.matmul(y, h); // [2, 4]·[4, 5]: 2·2·5·4 = 80
  };
  const both = (x: Array, y: Array) => {
    const h = np.matmul(x, w.ref);
    return [np.matmul(y, h.ref), np.matmul(h, unused.ref)];
  };
  const lowered = lowerFunction(f, [avalSpec([4, 3]), avalSpec([2, 4])] as never);
  assert.equal(lowered.matmulFlops, 120 + 80);
  assert.equal(lowered.opCounts.MatMul, 2);
  const full = lowerFunction(both, [avalSpec([4, 3]), avalSpec([2, 4])] as never);
  assert.equal(full.matmulFlops, 120 + 80 + 2 * 4 * 64 * 5);
  assert.ok(full.model.length - lowered.model.length >= 5 * 64 * 4, `${full.model.length} vs ${lowered.model.length}`);
  w.dispose(); unused.dispose();
});

test("inference files: the bias joins its MatMul; int8 MatMuls stay within the quantization error bound", async () => {
  const [M, K, N] = [6, 16, 5];
  const a = Float32Array.from(normal(key(6), 2 * 3 * K), (v, i) => v + (i % 7 === 0 ? 3 : 0)); // [2, 3, K], skewed
  const wData = Float32Array.from(normal(key(7), K * N), (v, i) => v * (1 + (i % N))); // columns of different scale
  const w = np.array(wData).reshape([K, N]);
  const b = np.array(Float32Array.from({ length: N }, (_, i) => 0.5 * i - 1));
  const f = (x: Array) => np.matmul(x, w.ref).add(b.ref);
  const spec = [avalSpec([2, 3, K])] as never;
  const plain = lowerFunction(f, spec);
  const fused = lowerFunction(f, spec, { inference: { int8: false } });
  const int8 = lowerFunction(f, spec, { inference: { int8: true } });
  const run = async (model: Uint8Array) => {
    const session = await ort.InferenceSession.create(model);
    const out = await session.run({ in_0: new ort.Tensor("float32", a, [2, 3, K]) });
    return out.out_0.data as Float32Array;
  };
  const exact = globalThis.Array.from({ length: M * N }, (_, i) => {
    const [m, n] = [Math.floor(i / N), i % N];
    let s = 0.5 * n - 1;
    for (let k = 0; k < K; k++) s += a[m * K + k] * wData[k * N + n];
    return s;
  });
  // fp32 rewrites: same numbers, the Add now reads the MatMul's output directly
  assert.ok(relErr(await run(fused.model), exact) < 1e-6);
  assert.ok(relErr(await run(plain.model), exact) < 1e-6);
  assert.deepEqual([fused.opCounts.MatMul, fused.opCounts.Add], [1, 1]);
  const moved = biasNextToMatMul({
    nodes: [
      { opType: "MatMul", inputs: ["x", "w"], outputs: ["xw"] },
      { opType: "Reshape", inputs: ["xw", "shape"], outputs: ["xw3"] },
      { opType: "Add", inputs: ["xw3", "bias"], outputs: ["y"] },
    ],
    initializers: [float32Tensor("w", [K, N], wData), int64Tensor("shape", [3], [2, 3, N]), float32Tensor("bias", [N], new Float32Array(N))],
  }).nodes;
  assert.deepEqual(moved.map((n) => [n.opType, n.inputs[0], n.outputs[0]]), [["MatMul", "x", "xw"], ["Add", "xw", "xw_bias"], ["Reshape", "xw_bias", "y"]]);
  // int8: |error| ≤ Σ_k |a_k|·s_n/2 + |w_kn|·s_a/2 + s_a·s_n/4 with s_a = range(a)/255, s_n = max_k |w_kn|/127
  assert.deepEqual([int8.opCounts.DynamicQuantizeLinear, int8.opCounts.MatMulInteger, int8.opCounts.MatMul], [1, 1, undefined]);
  const got = await run(int8.model);
  const sA = (Math.max(0, ...a) - Math.min(0, ...a)) / 255;
  let worst = 0;
  for (let i = 0; i < M * N; i++) {
    const [m, n] = [Math.floor(i / N), i % N];
    let sN = 0;
    for (let k = 0; k < K; k++) sN = Math.max(sN, Math.abs(wData[k * N + n]) / 127);
    let bound = 0;
    for (let k = 0; k < K; k++) bound += (Math.abs(a[m * K + k]) * sN) / 2 + (Math.abs(wData[k * N + n]) * sA) / 2 + (sA * sN) / 4;
    assert.ok(Math.abs(got[i] - exact[i]) <= bound * 1.001 + 1e-5, `element ${i}: ${got[i]} vs ${exact[i]}, bound ${bound}`);
    worst = Math.max(worst, Math.abs(got[i] - exact[i]) / bound);
  }
  assert.ok(worst > 0.01, "int8 really quantized (some error)");
  w.dispose(); b.dispose();
});

test("per-column int8 codes: symmetric, within ±127, the column maximum coded exactly", () => {
  const w = Float32Array.of(1.1, -0.02, -2, 0.005, 0.5, 0);
  const { q, scale } = quantizeColumns(w, 3, 2);
  assert.deepEqual(globalThis.Array.from(q), [70, -127, -127, 32, 32, 0]);
  assert.deepEqual(globalThis.Array.from(scale), [Math.fround(2 / 127), Math.fround(0.02 / 127)]);
});

test("export rewrites: decomposed layer norm, RMS norm, softmax and SiLU become LayerNormalization, a 5-node RMS norm, Softmax and Sigmoid·x, with the same outputs", async () => {
  const shape = [2, 3, 8];
  const x = normal(key(21), 48).map((v, i) => 3 * v + (i % 8)); // off-centre rows, so centring matters
  const gain = np.array(normal(key(22), 8));
  const cases: [string, (v: Array) => Array, Record<string, number>][] = [
    ["layer norm", (v) => layerNorm(v), { LayerNormalization: 1 }],
    ["RMS norm with gain", (v) => rmsNorm(gain.ref, v), { ReduceMean: 1, Div: 1, Sqrt: 1 }],
    ["softmax", (v) => nn.softmax(v, -1), { Softmax: 1 }],
    ["SiLU", (v) => nn.silu(v), { Sigmoid: 1 }],
    ["all in a row", (v) => nn.silu(nn.softmax(rmsNorm(gain.ref, layerNorm(v)).mul(3), -1)), { LayerNormalization: 1, ReduceMean: 1, Softmax: 1, Sigmoid: 1 }],
  ];
  for (const [name, f, ops] of cases) {
    const plain = lowerFunction(f as never, [avalSpec(shape)] as never, { name: "plain" });
    const fused = lowerFunction(f as never, [avalSpec(shape)] as never, { name: "fused", inference: { int8: false } });
    const run = async (model: Uint8Array) => {
      const s = await ort.InferenceSession.create(model);
      const out = await s.run({ in_0: new ort.Tensor("float32", x, shape) });
      await s.release();
      return out.out_0.data as Float32Array;
    };
    const [a, b] = [await run(plain.model), await run(fused.model)];
    const err = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.ok(err < 1e-5, `${name}: max |fused − decomposed| ${err}`);
    for (const [op, count] of Object.entries(ops)) assert.equal(fused.opCounts[op], count, `${name}: ${op}`);
    const nodes = (c: Record<string, number>) => Object.values(c).reduce((s, n) => s + n, 0);
    assert.ok(nodes(fused.opCounts) < nodes(plain.opCounts), `${name}: ${nodes(plain.opCounts)} → ${nodes(fused.opCounts)} nodes`);
    assert.equal(fused.opCounts.Exp, undefined, `${name}: no decomposed exp left`);
  }
  gain.dispose();
});
