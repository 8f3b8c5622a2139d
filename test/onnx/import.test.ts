/**
 * The ONNX importer (src/onnx/) on the Sana-style denoiser fixture (scripts/make-onnx-fixture.py):
 * the imported graph reproduces onnxruntime, its jvp (inputs and parameters) and grad match
 * finite differences, it runs under jit and lowers back to ONNX with lower.ts, and bad files
 * give one-line errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { numpy as np, jvp, grad, jit, tree, type Array } from "@jax-js/jax";
import { importOnnx, OnnxImportError, SUPPORTED_OPS, type ImportedOnnx } from "../../src/onnx/graph.ts";
import { OnnxReadError, decodeOnnx } from "../../src/onnx/reader.ts";
import { lowerFunction, avalSpec } from "../../src/executor/lower.ts";
import { encodeModel, float32Tensor, int64Tensor, DataType, attrFloat, attrGraph, attrInt, attrInts, type NodeProto, type GraphProto } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";

const DIR = "test/fixtures/onnx";
const FILE = `${DIR}/denoiser.onnx`;
const fixture = JSON.parse(readFileSync(`${DIR}/denoiser.json`, "utf8")) as {
  inputs: Record<string, { shape: number[]; data: number[] }>;
  outputs: Record<string, { shape: number[]; data: number[] }>;
};
const NAMES = ["x", "t", "cond"];
const hostInputs = NAMES.map((k) => ({ data: Float32Array.from(fixture.inputs[k].data), shape: fixture.inputs[k].shape }));
const inputArrays = () => hostInputs.map((h) => np.array(h.data, { shape: h.shape }));
const want = Float32Array.from(fixture.outputs.v.data);

const model = importOnnx(FILE);

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const norm = (a: ArrayLike<number>) => Math.sqrt(globalThis.Array.from(a).reduce((s, x) => s + x * x, 0));
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  norm(globalThis.Array.from(a, (x, i) => x - b[i])) / Math.max(norm(b), 1e-30);

function forward(m: ImportedOnnx, params = m.paramArrays(), inputs = inputArrays()): Float32Array {
  const [v] = m.apply(params, inputs);
  return v.dataSync() as Float32Array;
}

test("the imported denoiser reproduces onnxruntime (Python's recorded outputs and onnxruntime-node)", async () => {
  assert.deepEqual(model.inputs.map((i) => [i.name, i.shape]), [["x", ["batch", 4, 8, 8]], ["t", ["batch"]], ["cond", ["batch", 8, 16]]]);
  assert.deepEqual(model.outputs.map((o) => o.name), ["v"]);
  assert.equal(Object.keys(model.params).length, 42, "every floating initializer read as data is a parameter");
  assert.ok(!("split6" in model.params) && !("tokens_shape" in model.params), "integer initializers stay constants");
  const t0 = performance.now();
  const got = forward(model);
  const ms = performance.now() - t0;
  const e = maxAbs(got, want);
  assert.ok(e < 1e-5, `max |Δ| to Python onnxruntime ${e.toExponential(2)}`);

  const session = await ort.InferenceSession.create(FILE);
  const feeds = Object.fromEntries(NAMES.map((k, i) => [k, new ort.Tensor("float32", hostInputs[i].data, hostInputs[i].shape)]));
  const node = (await session.run(feeds)).v.data as Float32Array;
  const e2 = maxAbs(got, node);
  assert.ok(e2 < 1e-5, `max |Δ| to onnxruntime-node ${e2.toExponential(2)}`);
  await session.release();
  console.log(`# fixture forward (eager jax-js, batch 2, first call): ${ms.toFixed(0)} ms; max |Δ| Python ${e.toExponential(2)}, node ${e2.toExponential(2)}`);
});

test("the symbolic batch dimension follows the inputs (batch 1)", () => {
  const one = hostInputs.map((h) => np.array(h.data.slice(0, h.data.length / 2), { shape: [1, ...h.shape.slice(1)] }));
  const got = forward(model, model.paramArrays(), one);
  assert.ok(maxAbs(got, want.slice(0, want.length / 2)) < 1e-5);
});

test("external data and float16 initializers load: the same parameters and outputs", () => {
  const ext = importOnnx(`${DIR}/denoiser-ext/denoiser.onnx`);
  assert.deepEqual(Object.keys(ext.params).sort(), Object.keys(model.params).sort());
  for (const [k, p] of Object.entries(model.params)) assert.deepEqual(ext.params[k].data, p.data, k);
  // pos_embed is stored as float16: widened exactly (the values Python's numpy prints for it).
  assert.deepEqual(globalThis.Array.from(model.params.pos_embed.data.slice(0, 3)), [-0.11431884765625, 0.119384765625, 0.07904052734375]);
  assert.ok(maxAbs(forward(ext), want) < 1e-5);
});

test("jvp along x and along the parameters matches central differences", () => {
  const params = model.params;
  const dx = np.array(Float32Array.from(hostInputs[0].data, (_, i) => Math.sin(1.7 * i + 0.3)), { shape: hostInputs[0].shape });
  const fx = (x: Array) => {
    const [, t, c] = inputArrays();
    return model.apply(model.paramArrays(), [x, t, c])[0];
  };
  const [x0] = inputArrays();
  const [out, tan] = jvp(fx, [x0.ref], [dx.ref]);
  out.dispose();
  // ε = 1e-3: small enough that few ReLU (linear attention) inputs change sign between x ± εd
  // (at 1e-2 the kinks dominate the difference's error), large enough for float32 round-off.
  const eps = 1e-3;
  const fd = (sign: number) => fx(x0.ref.add(dx.ref.mul(sign * eps))).dataSync() as Float32Array;
  const [plus, minus] = [fd(1), fd(-1)];
  const central = plus.map((p, i) => (p - minus[i]) / (2 * eps));
  const ex = relErr(tan.dataSync(), central);
  assert.ok(ex < 2e-3, `jvp in x: relative error to central difference ${ex.toExponential(2)}`);

  // Direction in parameter space: a pseudo-random perturbation scaled to each tensor's size.
  const dirs: Record<string, Array> = Object.fromEntries(Object.entries(params).map(([k, p], j) => [
    k, np.array(Float32Array.from(p.data, (v, i) => 0.1 * Math.cos(0.37 * i + j) * (Math.abs(v) + 0.05)), { shape: [...p.shape] })]));
  const fp = (ps: Record<string, Array>) => model.apply(ps, inputArrays())[0];
  const [o2, tp] = jvp(fp, [model.paramArrays()], [tree.ref(dirs)]);
  o2.dispose();
  const shifted = (sign: number) => fp(Object.fromEntries(Object.entries(model.paramArrays()).map(([k, p]) => [k, p.add(dirs[k].ref.mul(sign * eps))]))).dataSync() as Float32Array;
  const [pp, pm] = [shifted(1), shifted(-1)];
  const ep = relErr(tp.dataSync(), pp.map((p, i) => (p - pm[i]) / (2 * eps)));
  assert.ok(ep < 2e-3, `jvp in the parameters: relative error ${ep.toExponential(2)}`);
  console.log(`# jvp vs central differences (ε = ${eps}): x ${ex.toExponential(2)}, params ${ep.toExponential(2)}`);
  tree.dispose([dx, x0, dirs] as never);
});

test("grad of a scalar loss w.r.t. the parameters is finite and matches a directional difference", () => {
  const target = np.array(want.map((v) => 0.5 * v), { shape: fixture.outputs.v.shape });
  const loss = (ps: Record<string, Array>) => {
    const v = model.apply(ps, inputArrays())[0];
    const d = v.sub(target.ref);
    return np.mean(d.ref.mul(d));
  };
  const g = grad(loss)(model.paramArrays()) as Record<string, Array>;
  let dot = 0;
  const dirs: Record<string, Float32Array> = {};
  for (const [k, p] of Object.entries(model.params)) {
    const gk = g[k].ref.dataSync() as Float32Array;
    assert.ok(gk.every(Number.isFinite), `grad ${k} finite`);
    dirs[k] = Float32Array.from(p.data, (_, i) => Math.sin(0.91 * i + k.length));
    for (let i = 0; i < gk.length; i++) dot += gk[i] * dirs[k][i];
  }
  assert.ok(Object.values(g).some((a) => (a.ref.dataSync() as Float32Array).some((x) => x !== 0)));
  const eps = 1e-3;
  const at = (sign: number) => {
    const ps = Object.fromEntries(Object.entries(model.params).map(([k, p]) => [k, np.array(Float32Array.from(p.data, (v, i) => v + sign * eps * dirs[k][i]), { shape: [...p.shape] })]));
    return (loss(ps).dataSync() as Float32Array)[0];
  };
  const fd = (at(1) - at(-1)) / (2 * eps);
  const rel = Math.abs(fd - dot) / Math.abs(dot);
  assert.ok(rel < 1e-2, `⟨grad, d⟩ ${dot} vs central difference ${fd} (relative ${rel.toExponential(2)})`);
  console.log(`# grad·d ${dot.toFixed(5)} vs central difference ${fd.toFixed(5)}: relative ${rel.toExponential(2)}`);
  tree.dispose([g, target] as never);
});

test("apply runs under jit, and a function built on it lowers to ONNX (lower.ts) and runs in onnxruntime-node", async () => {
  const [leaves, def] = tree.flatten(model.paramArrays() as never) as unknown as [Array[], Parameters<typeof tree.unflatten>[0]];
  const n = leaves.length;
  const f = (...xs: Array[]) => {
    const ps = tree.unflatten(def, xs.slice(0, n)) as Record<string, Array>;
    // A training-style program: the velocity and its tangent along a fixed direction of x.
    const [x, t, c] = xs.slice(n);
    const dx = x.ref.mul(0.5);
    const [v, dv] = jvp((xx: Array) => model.apply(tree.ref(ps), [xx, t.ref, c.ref])[0], [x], [dx]);
    tree.dispose([ps, t, c] as never);
    return [v, dv];
  };
  const args = () => [...leaves.map((l) => l.ref), ...inputArrays()];
  const eager = (f(...args()) as Array[]).map((a) => a.dataSync() as Float32Array);
  assert.ok(maxAbs(eager[0], want) < 1e-5);
  const jitted = (jit(f as never) as unknown as (...a: Array[]) => Array[])(...args()).map((a) => a.dataSync() as Float32Array);
  assert.ok(maxAbs(jitted[0], eager[0]) < 1e-5 && relErr(jitted[1], eager[1]) < 1e-5, "jit agrees");

  const specs = [...leaves.map((l) => avalSpec(l.shape)), ...hostInputs.map((h) => avalSpec(h.shape))];
  const lowered = lowerFunction(f, specs as never);
  const session = await ort.InferenceSession.create(lowered.model);
  const feeds: Record<string, ort.Tensor> = {};
  lowered.inputs.forEach((spec, i) => {
    const data = i < n ? (leaves[i].ref.dataSync() as Float32Array) : hostInputs[i - n].data;
    feeds[spec.name] = new ort.Tensor("float32", data, [...spec.shape]);
  });
  const out = await session.run(feeds);
  const [v, dv] = lowered.outputs.map((o) => out[o.name].data as Float32Array);
  const ev = maxAbs(v, want), edv = relErr(dv, eager[1]);
  assert.ok(ev < 1e-5, `lowered forward max |Δ| ${ev.toExponential(2)}`);
  assert.ok(edv < 1e-5, `lowered jvp relative error ${edv.toExponential(2)}`);
  console.log(`# lowered (forward + jvp): ${Object.values(lowered.opCounts).reduce((a, b) => a + b, 0)} nodes; max |Δ| v ${ev.toExponential(2)}, rel dv ${edv.toExponential(2)}`);
  await session.release();
  tree.dispose(leaves as never);
});

// ---------------------------------------------------------------------------------------------
// Errors

const tmp = tempDir("tbcm-onnx-");

function oneLine(f: () => unknown, pattern: RegExp, type: Function = OnnxReadError): void {
  assert.throws(f, (e: Error) => {
    assert.ok(e instanceof type, `${e.name}: ${e.message}`);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.match(e.message, pattern);
    return true;
  });
}

test("bad files: truncated, not ONNX, missing, external data escaping the folder or past its end", () => {
  const bytes = readFileSync(FILE);
  const cut = join(tmp, "x.onnx");
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  oneLine(() => importOnnx(cut), /^".*x\.onnx" is not a readable ONNX model: truncated/);
  const junk = join(tmp, "junk.onnx");
  writeFileSync(junk, Buffer.from("PK\u0003\u0004 this is a zip file, not a model".repeat(4)));
  oneLine(() => importOnnx(junk), /^".*junk\.onnx" is not a readable ONNX model: /);
  const png = join(tmp, "pic.onnx");
  writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
  oneLine(() => importOnnx(png), /^".*pic\.onnx" is not a readable ONNX model: /);
  oneLine(() => importOnnx(join(tmp, "absent.onnx")), /absent\.onnx" is not a readable ONNX model: no such file/);
  oneLine(() => importOnnx(`${DIR}/bad-escape.onnx`), /bad-escape\.onnx" is not a readable ONNX model: tensor "w": external data path "\.\.\/secret\.bin" leaves the model's folder/);
  oneLine(() => importOnnx(`${DIR}/bad-bounds.onnx`), /bad-bounds\.onnx" is not a readable ONNX model: tensor "w": external data \[8, 72\) is past the end of "bad-bounds\.bin" \(64 bytes\)/);
});

test("an unsupported op names the op, the node and the file", () => {
  const file = join(tmp, "unsupported.onnx");
  writeFileSync(file, encodeModel({
    graph: {
      name: "g",
      nodes: [{ opType: "Relu", inputs: ["a"], outputs: ["b"], name: "r" }, { opType: "NonMaxSuppression", inputs: ["b"], outputs: ["y"], name: "/nms/NMS_3" }],
      initializers: [float32Tensor("w", [2], [1, 2])],
      inputs: [{ name: "a", elemType: DataType.FLOAT, shape: [2] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2] }],
    },
  }));
  oneLine(() => importOnnx(file), /^".*unsupported\.onnx": unsupported ONNX operator NonMaxSuppression \(node "\/nms\/NMS_3"\); supported: /, OnnxImportError);
  // outside the default domain: the usual cause and its remedy
  for (const [domain, remedy] of [["pkg.onnxscript.torch_lib", /a custom operator; the model's own functions are inlined/], ["com.microsoft", /an onnxruntime-optimised file/]] as const) {
    const f = join(tmp, `domain-${domain}.onnx`);
    writeFileSync(f, encodeModel({
      graph: {
        name: "g", nodes: [{ opType: "aten_gelu", inputs: ["a"], outputs: ["y"], name: "g0", domain }], initializers: [],
        inputs: [{ name: "a", elemType: DataType.FLOAT, shape: [2] }], outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2] }],
      },
    }));
    oneLine(() => importOnnx(f), new RegExp(`unsupported ONNX operator ${domain.replace(/\./g, "\\.")}\\.aten_gelu \\(node "g0"\\) \\(${remedy.source}`), OnnxImportError);
  }
  assert.ok(SUPPORTED_OPS.includes("Conv") && SUPPORTED_OPS.includes("LayerNormalization"));
});

test("an input of the wrong shape names the tensor, its shape and the expected one", () => {
  const [x, t, c] = inputArrays();
  oneLine(() => model.apply(model.paramArrays(), [x.reshape([2, 4, 64]), t, c]),
    /denoiser\.onnx": input "x" has shape \[2, 4, 64\], expected \[batch, 4, 8, 8\]$/, OnnxImportError);
  const [x2, t2, c2] = inputArrays();
  oneLine(() => model.apply(model.paramArrays(), [x2, t2.slice([0, 1]), c2]),
    /input "t" has shape \[1\], expected \[batch\]$/, OnnxImportError);
});

test("model-local functions (as torch.onnx.export(dynamo=True) may leave them) are inlined: nested calls, attributes from the caller, defaults — equal to onnxruntime", async () => {
  const file = join(tmp, "functions.onnx");
  const n = (opType: string, inputs: string[], outputs: string[], attributes: NodeProto["attributes"] = [], domain?: string): NodeProto => ({ opType, inputs, outputs, name: outputs[0], attributes, ...(domain ? { domain } : {}) });
  writeFileSync(file, encodeModel({
    opsetVersion: 17,
    functions: [
      // act(X) = LeakyRelu(X, alpha from the caller)
      { name: "act", domain: "pkg.test", inputs: ["X"], outputs: ["Y"], attributes: ["alpha"],
        nodes: [{ opType: "LeakyRelu", inputs: ["X"], outputs: ["Y"], name: "lr", attributes: [{ name: "alpha", type: "ref", of: "float", ref: "alpha" }] }] },
      // block(X, W) = act(X·W) + X·W, the call inside passing its own alpha on
      { name: "block", domain: "pkg.test", inputs: ["X", "W"], outputs: ["Y"], attributes: ["alpha"],
        nodes: [
          { opType: "MatMul", inputs: ["X", "W"], outputs: ["h"], name: "mm" },
          { opType: "act", domain: "pkg.test", inputs: ["h"], outputs: ["a"], name: "call", attributes: [{ name: "alpha", type: "ref", of: "float", ref: "alpha" }] },
          { opType: "Add", inputs: ["a", "h"], outputs: ["Y"], name: "add" },
        ] },
    ],
    graph: {
      name: "with_functions",
      nodes: [
        n("block", ["x", "w1"], ["y1"], [attrFloat("alpha", 0.3)], "pkg.test"),
        n("block", ["y1", "w2"], ["y2"], [attrFloat("alpha", 0.05)], "pkg.test"),
        n("Tanh", ["y2"], ["y"]),
      ],
      initializers: [float32Tensor("w1", [4, 4], Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1))), float32Tensor("w2", [4, 4], Float32Array.from({ length: 16 }, (_, i) => Math.cos(2 * i)))],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [3, 4] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [3, 4] }],
    },
  }));
  const x = Float32Array.from({ length: 12 }, (_, i) => Math.sin(0.7 * i) * 2);
  const session = await ort.InferenceSession.create(file);
  const want = (await session.run({ x: new ort.Tensor("float32", x, [3, 4]) })).y.data as Float32Array;
  await session.release();
  const m = importOnnx(file);
  const got = m.apply(m.paramArrays(), [np.array(x).reshape([3, 4])])[0].dataSync() as Float32Array;
  const e = got.reduce((mx, v, i) => Math.max(mx, Math.abs(v - want[i])), 0);
  assert.ok(e < 1e-6, `max |Δ| ${e.toExponential(2)}`);
  assert.ok(want.some((v) => v < -0.01), "negative values, so the two alphas matter");
});

test("an If inside a model-local function, and a function called from an If's branch, are inlined with their names kept apart: equal to onnxruntime", async () => {
  const file = join(tmp, "function-if.onnx");
  const n = (opType: string, inputs: string[], outputs: string[], attributes: NodeProto["attributes"] = [], domain?: string): NodeProto => ({ opType, inputs, outputs, name: outputs[0], attributes, ...(domain ? { domain } : {}) });
  const graph = (name: string, nodes: NodeProto[], output: string, rank: number): GraphProto => ({
    name, nodes, initializers: [], inputs: [], outputs: [{ name: output, elemType: DataType.FLOAT, shape: globalThis.Array.from({ length: rank }, (_, i) => `${output}_${i}`) }],
  });
  writeFileSync(file, encodeModel({
    opsetVersion: 17,
    functions: [
      // squeeze1(X) = X without its axis 1 when that has extent 1 (torch writes If for a squeeze of an unknown extent);
      // the branches read the body's values (X, its constants) by the names the body gives them
      { name: "squeeze1", domain: "pkg.test", inputs: ["X"], outputs: ["Y"],
        nodes: [
          n("Constant", [], ["one"], [attrInt("value_int", 1)]), n("Constant", [], ["axes"], [attrInts("value_ints", [1])]),
          n("Shape", ["X"], ["s"]), n("Gather", ["s", "one"], ["d1"], [attrInt("axis", 0)]), n("Equal", ["d1", "one"], ["c"]),
          n("If", ["c"], ["Y"], [
            attrGraph("then_branch", graph("then", [n("Squeeze", ["X", "axes"], ["sq"])], "sq", 2)),
            attrGraph("else_branch", graph("else", [n("Identity", ["X"], ["id"])], "id", 3)),
          ]),
        ] },
    ],
    graph: {
      name: "function_if",
      nodes: [
        n("squeeze1", ["x"], ["a"], [], "pkg.test"), // [2, 3]
        n("Unsqueeze", ["a", "axes1"], ["a2"]), n("Mul", ["a2", "w"], ["aw"]),
        n("squeeze1", ["aw"], ["b"], [], "pkg.test"), // a second call: its own names
        n("Shape", ["x"], ["sx"]), n("Gather", ["sx", "one"], ["dx"], [attrInt("axis", 0)]), n("Equal", ["dx", "one"], ["cx"]),
        n("If", ["cx"], ["c"], [
          attrGraph("then_branch", graph("t", [n("squeeze1", ["x"], ["t_sq"], [], "pkg.test"), n("Neg", ["t_sq"], ["t_out"])], "t_out", 2)),
          attrGraph("else_branch", graph("e", [n("Squeeze", ["x", "axes1"], ["e_out"])], "e_out", 2)),
        ]),
        n("Sum", ["a", "b", "c"], ["abc"]), n("Tanh", ["abc"], ["y"]),
      ],
      initializers: [float32Tensor("w", [3], Float32Array.of(0.5, -1.5, 2)), int64Tensor("one", [], [1]), int64Tensor("axes1", [1], [1])],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: [2, 1, 3] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2, 3] }],
    },
  }));
  const x = Float32Array.from({ length: 6 }, (_, i) => Math.sin(0.9 * i + 0.3));
  const session = await ort.InferenceSession.create(file);
  const want = (await session.run({ x: new ort.Tensor("float32", x, [2, 1, 3]) })).y.data as Float32Array;
  await session.release();
  const m = importOnnx(file);
  const got = m.apply(m.paramArrays(), [np.array(x).reshape([2, 1, 3])])[0].dataSync() as Float32Array;
  assert.equal(got.length, 6);
  const e = got.reduce((mx, v, i) => Math.max(mx, Math.abs(v - want[i])), 0);
  assert.ok(e < 1e-6, `max |Δ| ${e.toExponential(2)}`);
});

test("fields the reader does not use are skipped, whatever their length: doc strings and metadata on the model, its graph and a node", () => {
  const plain = encodeModel({
    graph: {
      name: "g", nodes: [{ opType: "Relu", inputs: ["a"], outputs: ["y"], name: "r" }], initializers: [],
      inputs: [{ name: "a", elemType: DataType.FLOAT, shape: [2] }], outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2] }],
    },
  });
  // protobuf: fields may come in any order, so these are appended as bytes (tag, length, value)
  const field = (no: number, body: Uint8Array) => Uint8Array.from([(no << 3) | 2, body.length, ...body]);
  const text = (s: string) => new TextEncoder().encode(s);
  const meta = field(14, Uint8Array.from([...field(1, text("source")), ...field(2, text("a test"))])); // ModelProto.metadata_props
  const withDocs = Uint8Array.from([...plain, ...field(6, text("the model's doc string")), ...meta]);
  const m = importOnnx(decodeOnnx(withDocs, { file: "docs.onnx" }));
  const y = m.apply({}, [np.array(Float32Array.of(-1, 2))])[0].dataSync() as Float32Array;
  assert.deepEqual([...y], [0, 2]);
});

/** A seeded generator (mulberry32), so every fuzz case is reproducible from its index. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("fuzz: 500 seeded mutations of a model (with a function and an If) either decode (then import and run, or fail with a one-line OnnxImportError) or fail with a one-line OnnxReadError", () => {
  const good = encodeModel({
    functions: [{ name: "f", domain: "pkg.x", inputs: ["X"], outputs: ["Y"], nodes: [{ opType: "Relu", inputs: ["X"], outputs: ["Y"], name: "r" }] }],
    graph: {
      name: "g",
      nodes: [
        { opType: "MatMul", inputs: ["a", "w"], outputs: ["h"], name: "m" }, { opType: "f", inputs: ["h"], outputs: ["r"], name: "call", domain: "pkg.x" },
        { opType: "Reshape", inputs: ["r", "shape"], outputs: ["y0"], name: "s", attributes: [attrFloat("unused", 1)] },
        // an If on a shape (its branches are subgraphs the reader decodes and the importer runs)
        { opType: "Shape", inputs: ["y0"], outputs: ["sh"], name: "sh" }, { opType: "Gather", inputs: ["sh", "zero"], outputs: ["d0"], name: "d0" },
        { opType: "Equal", inputs: ["d0", "two"], outputs: ["is2"], name: "eq" },
        {
          opType: "If", inputs: ["is2"], outputs: ["y"], name: "if", attributes: [
            attrGraph("then_branch", { name: "t", nodes: [{ opType: "Neg", inputs: ["y0"], outputs: ["yt"], name: "n" }], initializers: [], inputs: [], outputs: [{ name: "yt", elemType: DataType.FLOAT, shape: ["a", "b"] }] }),
            attrGraph("else_branch", { name: "e", nodes: [{ opType: "Identity", inputs: ["y0"], outputs: ["ye"], name: "i" }], initializers: [], inputs: [], outputs: [{ name: "ye", elemType: DataType.FLOAT, shape: ["a", "b"] }] }),
          ],
        },
      ],
      initializers: [float32Tensor("w", [3, 4], Float32Array.from({ length: 12 }, (_, i) => i / 7)), int64Tensor("shape", [2], [2, 2]), int64Tensor("zero", [], [0]), int64Tensor("two", [], [2])],
      inputs: [{ name: "a", elemType: DataType.FLOAT, shape: ["batch", 3] }], outputs: [{ name: "y", elemType: DataType.FLOAT, shape: [2, 2] }],
    },
  });
  let decoded = 0, refused = 0;
  for (let i = 0; i < 500; i++) {
    const r = seeded(7000 + i);
    let bytes = good.slice();
    const kind = i % 3;
    if (kind === 0) for (let k = 1 + Math.floor(r() * 4); k > 0; k--) bytes[Math.floor(r() * bytes.length)] ^= 1 + Math.floor(r() * 255);
    else if (kind === 1) bytes = bytes.slice(0, Math.floor(r() * bytes.length));
    else { const at = Math.floor(r() * bytes.length); bytes[at] = [0x7f, 0xff, 0x80, 0x00][Math.floor(r() * 4)]; }
    try {
      const model = decodeOnnx(bytes, { file: "fuzz.onnx" });
      decoded++;
      // what decodes, imports and runs, or is a one-line import error
      try {
        const m = importOnnx(model);
        m.apply(m.paramArrays(), [np.array(Float32Array.of(1, 2, 3, 4, 5, 6)).reshape([2, 3])]).forEach((a) => a.dispose());
      } catch (e) {
        assert.ok(e instanceof OnnxImportError, `case ${i} (import): ${(e as Error).name}: ${(e as Error).message}`);
        assert.ok(!(e as Error).message.includes("\n"), `case ${i} (import): one line: ${JSON.stringify((e as Error).message.slice(0, 400))}`);
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof OnnxReadError, `case ${i}: ${(e as Error).name}: ${(e as Error).message}`);
      assert.ok(!(e as Error).message.includes("\n"), `case ${i}: one line`);
      refused++;
    }
  }
  console.log(`# fuzz: ${decoded} decoded, ${refused} refused`);
  assert.ok(refused > 100, "the mutations reach the checks");
});
