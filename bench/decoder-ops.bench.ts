/**
 * What a bundle's VAE decoder costs through the importer: an upsampling block as diffusers' VAE
 * decoders have it (Resize ×2 → 3×3 Conv → GroupNorm → SiLU), run (a) by onnxruntime-node on the
 * ONNX file itself and (b) as tbcm runs a bundle's decoder: imported (src/onnx/), lowered again
 * (src/executor/lower.ts) and run by onnxruntime-node (`inference`, executor onnx). Nearest
 * upsampling is a broadcast in (b), linear a matmul by each axis' sampling matrix. Prints a table
 * (ms per call, median) and the largest difference between (a) and (b). Then what training
 * pays for such a block in a teacher: value and grad of ⟨y, r⟩ w.r.t. the input and every weight
 * (the backward pass: the convs' transposes), lowered and run by onnxruntime-node.
 *
 *   npx tsx bench/decoder-ops.bench.ts [--batch 8] [--channels 64] [--side 32] [--iters 20]
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import "../src/numerics/threads.ts";
import { importOnnx } from "../src/onnx/graph.ts";
import { decodeOnnx } from "../src/onnx/reader.ts";
import { inference } from "../src/executor/inference.ts";
import { OnnxFunction } from "../src/executor/onnxRun.ts";
import { numpy as np, valueAndGrad, tree, type Array } from "@jax-js/jax";
import { encodeModel, float32Tensor, attrInt, attrString, attrInts, DataType, type NodeProto } from "../src/executor/onnxProto.ts";

const { values } = parseArgs({ options: { batch: { type: "string" }, channels: { type: "string" }, side: { type: "string" }, iters: { type: "string" } } });
const B = Number(values.batch ?? 8), C = Number(values.channels ?? 64), S = Number(values.side ?? 32), iters = Number(values.iters ?? 20);
const wave = (n: number, seed: number, scale: number) => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(1.1 * i + seed));

function block(mode: "nearest" | "linear"): Uint8Array {
  const node = (opType: string, inputs: string[], output: string, attributes: NodeProto["attributes"] = []): NodeProto => ({ opType, inputs, outputs: [output], name: output, attributes });
  const resize = mode === "nearest"
    ? [attrString("mode", "nearest"), attrString("coordinate_transformation_mode", "asymmetric"), attrString("nearest_mode", "floor")]
    : [attrString("mode", "linear"), attrString("coordinate_transformation_mode", "half_pixel")];
  return encodeModel({
    opsetVersion: 18, irVersion: 8,
    graph: {
      name: `up_${mode}`,
      nodes: [
        node("Resize", ["x", "", "scales"], "up", resize),
        node("Conv", ["up", "w", "b"], "conv", [attrInts("pads", [1, 1, 1, 1])]),
        node("GroupNormalization", ["conv", "gs", "gb"], "gn", [attrInt("num_groups", 8)]),
        node("Sigmoid", ["gn"], "sig"),
        node("Mul", ["gn", "sig"], "y"),
      ],
      initializers: [
        float32Tensor("scales", [4], Float32Array.of(1, 1, 2, 2)), float32Tensor("w", [C, C, 3, 3], wave(C * C * 9, 1, 0.05)),
        float32Tensor("b", [C], wave(C, 2, 0.1)), float32Tensor("gs", [8], wave(8, 3, 1)), float32Tensor("gb", [8], wave(8, 4, 0.1)),
      ],
      inputs: [{ name: "x", elemType: DataType.FLOAT, shape: ["batch", C, S, S] }],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: ["batch", C, 2 * S, 2 * S] }],
    },
  });
}

const median = async (f: () => Promise<unknown>) => {
  await f(); await f();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) { const t0 = performance.now(); await f(); ts.push(performance.now() - t0); }
  return ts.sort((a, b) => a - b)[Math.floor(iters / 2)];
};

const x = wave(B * C * S * S, 5, 1);
// the training pass first: timed after the forward table, its run read ~2× slower (the process, not the program)
await gradTable();
console.log(`upsampling block [${B}, ${C}, ${S}, ${S}] → [${B}, ${C}, ${2 * S}, ${2 * S}], ${iters} calls each, median ms (this machine's cores)`);
console.log("| Resize mode | onnxruntime on the file | tbcm: imported, lowered, onnxruntime | ratio | max abs difference |");
console.log("|---|---|---|---|---|");
for (const mode of ["nearest", "linear"] as const) {
  const model = block(mode);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: "all" });
  const feed = { x: new ort.Tensor("float32", x, [B, C, S, S]) };
  const native = await median(() => session.run(feed));
  const want = (await session.run(feed)).y.data as Float32Array;
  await session.release();
  const imported = importOnnx(decodeOnnx(model, { file: `up_${mode}.onnx` }));
  const params = imported.paramArrays();
  const program = inference("onnx", params, (p, z) => imported.apply(p as never, [z])[0], `up_${mode}`);
  const input = [{ data: x, shape: [B, C, S, S] }];
  const ours = await median(() => program.run(input));
  const [got] = await program.run(input);
  await program.dispose();
  const diff = got.data.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
  console.log(`| ${mode} | ${native.toFixed(1)} | ${ours.toFixed(1)} | ${(ours / native).toFixed(2)} | ${diff.toExponential(1)} |`);
}


async function gradTable() {
  console.log(`value and grad of ⟨y, r⟩ w.r.t. x and the block's weights, [${B}, ${C}, ${S}, ${S}], executor onnx, median ms`);
  console.log("| Resize mode | value and grad | forward alone | ratio |");
  console.log("|---|---|---|---|");
  for (const mode of ["nearest", "linear"] as const) {
    const imported = importOnnx(decodeOnnx(block(mode), { file: `up_${mode}.onnx` }));
    const names = Object.keys(imported.params).sort();
    const r = np.array(wave(B * C * 4 * S * S, 9, 1), { shape: [B, C, 2 * S, 2 * S] });
    const loss = (...xs: Array[]) => imported.apply(Object.fromEntries(names.map((k, i) => [k, xs[i]])), [xs[names.length]])[0].mul(r.ref).sum();
    const fn = new OnnxFunction(((...xs: Array[]) => {
      const [v, g] = valueAndGrad(loss, { argnums: xs.map((_, i) => i) } as never)(...xs) as unknown as [Array, Array[]];
      return [v, ...g];
    }) as never, { name: `grad_${mode}` });
    const inputs = [...names.map((k) => imported.params[k]), { data: x, shape: [B, C, S, S] }];
    const ms = await median(() => fn.run(inputs));
    const params = imported.paramArrays();
    const fwd = inference("onnx", params, (p, z) => imported.apply(p as never, [z])[0], `fwd_${mode}`);
    const input = [{ data: x, shape: [B, C, S, S] }];
    const f = await median(() => fwd.run(input));
    await fwd.dispose();
    await fn.dispose();
    tree.dispose(params as never);
    console.log(`| ${mode} | ${ms.toFixed(1)} | ${f.toFixed(1)} | ${(ms / f).toFixed(2)} |`);
  }
  console.log("");
  
}
