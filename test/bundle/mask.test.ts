/**
 * A teacher with an attention mask (Sana's shape): the token embeddings and an integer or
 * boolean mask [B, L] that says which tokens are padding. The mask is a condition input like any
 * other: its table tensor (here int64 or bool, and the embeddings in float16, as PyTorch saves
 * them) holds each prompt's mask; the denoiser gets it in its own type, and the exported student
 * takes it as the teacher does (int64 stays int64), in onnxruntime and in plain JavaScript.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { distill } from "../../src/run/distill.ts";
import { exportStudent } from "../../src/run/export.ts";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, DataType, type DataTypeCode } from "../../src/executor/onnxProto.ts";
import { tempDir } from "../tempDir.ts";
import { shortRunConfig, assertWebGeneratorMatches, rgbDecoder, values, node } from "./shortRun.ts";

const dir = tempDir("tbcm-mask-");
const PROMPTS = ["", "a red square", "a blue circle on a table"];
/** Each prompt's mask over L = 4 tokens (1 = a real token): padding differs by prompt. */
const MASK = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]];
const L = 4, E = 5;

/** v(latent [B, 2, 4, 4], timestep [B], tokens [B, L, E], mask [B, L] of `maskType`): the tokens' masked mean conditions it. */
function denoiser(maskType: DataTypeCode): Uint8Array {
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "masked",
      nodes: [
        node("Flatten", ["latent"], ["h"], [attrInt("axis", 1)]),
        node("MatMul", ["h", "w_in"], ["a"]),
        node("Cast", ["mask"], ["mf"], [attrInt("to", DataType.FLOAT)]),
        node("Unsqueeze", ["mf", "axis2"], ["mf3"]),
        node("Mul", ["tokens", "mf3"], ["tmasked"]),
        node("ReduceSum", ["tmasked", "axis1"], ["tsum"], [attrInt("keepdims", 0)]),
        node("ReduceSum", ["mf", "axis1"], ["count"], [attrInt("keepdims", 1)]),
        node("Div", ["tsum", "count"], ["tmean"]),
        node("MatMul", ["tmean", "w_tok"], ["b"]),
        node("Unsqueeze", ["timestep", "axis1"], ["t1"]),
        node("Mul", ["t1", "w_time"], ["tt"]),
        node("Sin", ["tt"], ["temb"]),
        node("Sum", ["a", "b", "temb"], ["z"]),
        node("Tanh", ["z"], ["zz"]),
        node("MatMul", ["zz", "w_out"], ["o"]),
        node("Reshape", ["o", "shape"], ["velocity"]),
      ],
      initializers: [
        float32Tensor("w_in", [32, 16], values(512, 1)), float32Tensor("w_tok", [E, 16], values(16 * E, 2)),
        float32Tensor("w_time", [1, 16], values(16, 4, 3)), float32Tensor("w_out", [16, 32], values(512, 5)),
        int64Tensor("axis1", [1], [1]), int64Tensor("axis2", [1], [2]), int64Tensor("shape", [4], [-1, 2, 4, 4]),
      ],
      inputs: [
        { name: "latent", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] },
        { name: "timestep", elemType: DataType.FLOAT, shape: ["batch"] },
        { name: "tokens", elemType: DataType.FLOAT, shape: ["batch", L, E] },
        { name: "mask", elemType: maskType, shape: ["batch", L] },
      ],
      outputs: [{ name: "velocity", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
    },
  });
}

/** A safetensors file of typed tensors (raw little-endian bytes), as PyTorch would save them. */
function typedSafetensors(entries: [string, string, number[], Uint8Array][], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const [name, dtype, shape, raw] of entries) {
    header[name] = { dtype, shape, data_offsets: [at, at + raw.length] };
    at += raw.length;
  }
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let o = 8 + head.length;
  for (const [, , , raw] of entries) { out.set(raw, o); o += raw.length; }
  return out;
}

/** float32 → the nearest float16 bits (normal values only, which is all the fixture has). */
function toHalf(x: number): number {
  if (x === 0) return 0;
  const sign = x < 0 ? 0x8000 : 0, a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  let frac = Math.round((a / 2 ** e - 1) * 1024), exp = e + 15;
  if (frac === 1024) { frac = 0; exp++; }
  return sign | (exp << 10) | frac;
}
const fromHalf = (h: number) => (h & 0x8000 ? -1 : 1) * (1 + (h & 0x3ff) / 1024) * 2 ** (((h >> 10) & 0x1f) - 15);

// the tokens as the table holds them (float16, so these values exactly); padding tokens are not zero, so a mask that is ignored shows
const halves = Array.from(values(PROMPTS.length * L * E, 6, 1), (v) => toHalf(v));
const tokens = Float32Array.from(halves, (h) => (h === 0 ? 0 : fromHalf(h)));

/** A bundle whose mask input is int64 (table I64) or bool (table BOOL). */
function bundle(name: string, maskType: "int64" | "bool"): string {
  const b = join(dir, name);
  mkdirSync(b);
  writeFileSync(join(b, "transformer.onnx"), denoiser(maskType === "int64" ? DataType.INT64 : DataType.BOOL));
  const tokRaw = new Uint8Array(halves.length * 2), tv = new DataView(tokRaw.buffer);
  halves.forEach((h, i) => tv.setUint16(2 * i, h, true));
  const flat = MASK.flat();
  const maskRaw = maskType === "int64" ? new Uint8Array(BigInt64Array.from(flat, (v) => BigInt(v)).buffer) : Uint8Array.from(flat);
  writeFileSync(join(b, "prompt_embeddings.safetensors"), typedSafetensors([
    ["tokens", "F16", [PROMPTS.length, L, E], tokRaw],
    ["mask", maskType === "int64" ? "I64" : "BOOL", [PROMPTS.length, L], maskRaw],
  ], { prompts: JSON.stringify(PROMPTS) }));
  writeFileSync(join(b, "teacher.json"), JSON.stringify({
    format: "tbcm-teacher-bundle-1", latent_shape: [2, 4, 4],
    transformer: { inputs: { latent: "latent", time: "timestep", condition: ["tokens", "mask"] }, output: "velocity", prediction: "flow_velocity", time_embedding: "temb" },
    guidance_scales: [2, 3],
    vae_decoder: { input: "z", output: "rgb", output_range: [0, 1] },
  }));
  writeFileSync(join(b, "vae_decoder.onnx"), rgbDecoder());

  return b;
}

/** Table rows of prompts `idx` as the loop holds them: tokens then mask, flattened. */
const rowsOf = (idx: number[]) => Float32Array.from(idx.flatMap((p) => [...tokens.subarray(L * E * p, L * E * (p + 1)), ...MASK[p]]));
const feeds = (x: Float32Array, s: number[], idx: number[], maskType: "int64" | "bool") => ({
  latent: new ort.Tensor("float32", x, [idx.length, 2, 4, 4]),
  timestep: new ort.Tensor("float32", Float32Array.from(s), [idx.length]),
  tokens: new ort.Tensor("float32", Float32Array.from(idx.flatMap((p) => [...tokens.subarray(L * E * p, L * E * (p + 1))])), [idx.length, L, E]),
  mask: maskType === "int64" ? new ort.Tensor("int64", BigInt64Array.from(idx.flatMap((p) => MASK[p].map(BigInt))), [idx.length, L])
    : new ort.Tensor("bool", Uint8Array.from(idx.flatMap((p) => MASK[p])), [idx.length, L]),
});
const maxRel = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / (Math.abs(b[i]) + 1e-3)), 0);

for (const maskType of ["int64", "bool"] as const) {
  test(`an ${maskType} attention mask from the table (float16 embeddings beside it) reaches the denoiser as onnxruntime feeds it`, async () => {
    const b = loadBundle(bundle(`teacher-${maskType}`, maskType));
    assert.deepEqual(b.table.parts.map((p) => [p.name, [...p.shape]]), [["tokens", [L, E]], ["mask", [L]]]);
    const idx = [1, 2, 0, 1], s = [0.9, 0.4, 0.65, 0.2];
    const x = normal(key(3), idx.length * 32);
    const run = (rows: Float32Array) => b.flow(b.paramList(), np.array(x).reshape([idx.length, 32]), np.array(Float32Array.from(s)).reshape([idx.length, 1]), np.array(rows).reshape([idx.length, L * E + L]))[0].dataSync() as Float32Array;
    const got = run(rowsOf(idx));
    const session = await ort.InferenceSession.create(join(b.dir, "transformer.onnx"));
    const want = (await session.run(feeds(x, s, idx, maskType))).velocity.data as Float32Array;
    await session.release();
    const e = maxRel(got, want);
    assert.ok(e < 1e-4, `relative error ${e.toExponential(2)}`);
    // the mask matters: with every token unmasked the velocity moves
    const open = rowsOf(idx);
    idx.forEach((_, r) => open.fill(1, r * (L * E + L) + L * E, (r + 1) * (L * E + L)));
    assert.ok(maxRel(run(open), want) > 1e-2, "the fixture's mask changes its output");
  });
}

test("an int64 mask: a short run, and the exported student takes int64 as the teacher does (in plain JavaScript too)", async () => {
  const b = bundle("run-int64", "int64");
  const run = join(dir, "run");
  const cfg = shortRunConfig(b);
  const r = await distill(cfg, run);
  assert.ok(r.metrics.teacher_import_rel_error < 1e-05, `the imported teacher against onnxruntime on its file: ${r.metrics.teacher_import_rel_error}`);
  assert.ok(Number.isFinite(r.metrics.consistency_rel_mse_1step));
  const out = join(dir, "export");
  const manifest = await exportStudent(run, out) as unknown as { input_types: Record<string, string>; inputs: Record<string, { type?: string }> };
  assert.deepEqual(manifest.input_types, { mask: "int64" });
  assert.equal(manifest.inputs.mask.type, "int64");
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  assert.deepEqual(session.inputNames, ["latent", "timestep", "tokens", "mask"]);
  const idx = [2, 1, 0], s = [1, 0.5, 0.3];
  const x = normal(key(8), idx.length * 32);
  const got = (await session.run(feeds(x, s, idx, "int64"))).velocity.data as Float32Array;
  await session.release();
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const [v, lv] = bundleFlowStudent(loadBundle(b))(tree.ref(student), np.array(x).reshape([idx.length, 32]), np.array(Float32Array.from(s)).reshape([idx.length, 1]), np.array(rowsOf(idx)).reshape([idx.length, L * E + L]), np.full([idx.length, 1], 2));
  lv.dispose();
  tree.dispose(student);
  const e = maxRel(got, v.dataSync() as Float32Array);
  assert.ok(e < 1e-4, `exported student: relative error ${e.toExponential(2)}`);
  await assertWebGeneratorMatches(run, out, ["a blue circle on a table", "a red square"]);
});

test("a mask table that does not hold whole numbers (0/1 for bool) is a one-line error, not a silent truncation", () => {
  for (const [maskType, value] of [["int64", 0.5], ["bool", 2]] as const) {
    const b = bundle(`bad-${maskType}`, maskType);
    // rewrite the table with the mask as F32 holding one bad value
    const flat = MASK.flat().map((v, i) => (i === 5 ? value : v));
    const tokRaw = new Uint8Array(halves.length * 2), tv = new DataView(tokRaw.buffer);
    halves.forEach((h, i) => tv.setUint16(2 * i, h, true));
    writeFileSync(join(b, "prompt_embeddings.safetensors"), typedSafetensors([
      ["tokens", "F16", [PROMPTS.length, L, E], tokRaw],
      ["mask", "F32", [PROMPTS.length, L], new Uint8Array(Float32Array.from(flat).buffer)],
    ], { prompts: JSON.stringify(PROMPTS) }));
    assert.throws(() => loadBundle(b), (e: Error) => !e.message.includes("\n")
      && new RegExp(`condition input "mask" is ${maskType}, but its table tensor "mask" holds ${value} \\(prompt 1, element 1\\)`).test(e.message));
  }
});
