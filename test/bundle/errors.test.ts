/**
 * Bad bundles: a malformed teacher.json (unknown key, wrong type, missing field, unsupported
 * prediction), a prompt not in the embeddings table, a transformer file that is not ONNX, an
 * input the manifest does not name — each a one-line error, and nothing written into the run
 * directory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { parseConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { saveSafetensors } from "../../src/numerics/safetensors.ts";
import { tempDir } from "../tempDir.ts";
import { encodeModel, int64Tensor, float32Tensor, attrInt, DataType, type DataTypeCode } from "../../src/executor/onnxProto.ts";
import { node } from "./shortRun.ts";

const root = tempDir("tbcm-bad-bundle-");
const GOOD = {
  format: "tbcm-teacher-bundle-1",
  latent_shape: [4, 8, 8],
  transformer: { inputs: { latent: "x", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity" },
  guidance_scales: [2],
};

let n = 0;
/** A bundle of the fixture denoiser with `manifest` (an object, or raw text) and transformer file `onnx`. */
function bundle(manifest: unknown, onnx = "test/fixtures/onnx/denoiser.onnx"): string {
  const dir = join(root, `b${n++}`);
  mkdirSync(dir);
  copyFileSync(onnx, join(dir, "transformer.onnx"));
  saveSafetensors(join(dir, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [2, 8, 16], data: new Float32Array(256).fill(0.1) }]]), { prompts: JSON.stringify(["", "a cat"]) });
  writeFileSync(join(dir, "teacher.json"), typeof manifest === "string" ? manifest : JSON.stringify(manifest));
  return dir;
}

async function rejects(dir: string, pattern: RegExp, prompts = ""): Promise<void> {
  const run = join(root, `run${n++}`);
  const cfg = parseConfig({ teacher: { kind: "onnx", dir }, prompts_file: prompts, train: { steps: 1 } });
  await assert.rejects(distill(cfg, run), (e: Error) => {
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.ok(!existsSync(run), "nothing written into the run directory");
}

test("malformed teacher.json: unknown key, wrong type, missing field, unsupported prediction, not JSON", async () => {
  await rejects(bundle({ ...GOOD, latent_shap: [4, 8, 8] }), /unknown key "latent_shap" \(allowed: format, latent_shape/);
  await rejects(bundle({ ...GOOD, transformer: { ...GOOD.transformer, inputs: { ...GOOD.transformer.inputs, mask: "m" } } }), /unknown key "transformer\.inputs\.mask" \(allowed in "transformer\.inputs": latent, time, condition, guidance, constant\)/);
  await rejects(bundle({ ...GOOD, latent_shape: "4x8x8" }), /key "latent_shape": expected the latent's per-sample shape, e\.g\. \[4, 32, 32\], got "4x8x8"/);
  await rejects(bundle({ ...GOOD, transformer: { ...GOOD.transformer, time_scale: -1 } }), /key "transformer\.time_scale": expected .*got -1/);
  await rejects(bundle({ ...GOOD, transformer: { ...GOOD.transformer, noise_at: 0.5 } }), /key "transformer\.noise_at": expected the model's time of pure noise: 1 .* or 0 .*got 0\.5/);
  const { output: _, ...noOutput } = GOOD.transformer;
  await rejects(bundle({ ...GOOD, transformer: noOutput }), /missing key "transformer\.output" \(the output name of the prediction/);
  await rejects(bundle({ ...GOOD, transformer: { ...GOOD.transformer, prediction: "epsilon" } }), /prediction "epsilon" is not supported \(supported: flow_velocity, x0/);
  await rejects(bundle("{ not json"), /teacher\.json is not valid JSON/);
  await rejects(bundle({ ...GOOD, latent_shape: [4, 16, 16] }), /input "x" has shape \[batch, 4, 8, 8\]; teacher\.json's latent_shape \[4,16,16\] needs \[batch, 4, 16, 16\]/);
  await rejects(bundle({ ...GOOD, transformer: { ...GOOD.transformer, inputs: { ...GOOD.transformer.inputs, time: "timestep" } } }), /"transformer\.inputs\.time": .* has no input "timestep" \(its inputs: x, t, cond\)/);
});

test("a prompt not in the embeddings table is one line naming it; a missing folder too", async () => {
  const prompts = join(root, "prompts.txt");
  writeFileSync(prompts, "a cat\na dog\n");
  await rejects(bundle(GOOD), /prompt "a dog" \(.*prompts\.txt, line 2\) is not in the bundle's embeddings table .*\(2 prompts\)/, prompts);
  await rejects(join(root, "nowhere"), /no teacher bundle at ".*nowhere": cannot read .*teacher\.json/);
});

test("a transformer file that is not ONNX is one line naming the file", async () => {
  const junk = join(root, "junk.onnx");
  writeFileSync(junk, Buffer.from("PK\u0003\u0004 this is a zip file, not a model".repeat(4)));
  await rejects(bundle(GOOD, junk), /transformer\.onnx" is not a readable ONNX model/);
});

test("fuzz: 400 seeded mutations of a valid teacher.json are each a one-line ConfigError or a manifest with sane values", async () => {
  const { readManifest } = await import("../../src/bundle/manifest.ts");
  const { ConfigError } = await import("../../src/config/schema.ts");
  const good = JSON.stringify({ ...GOOD, transformer: { ...GOOD.transformer, time_scale: 1000 }, default_guidance: 2, black_latent: [] }, null, 1);
  let seed = 12345;
  const r = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const tokens = ["{", "}", "[", "]", ",", ":", '"', "-1", "1e400", "NaN", "null", "true", "0", "\\u0000", "__proto__", "constructor", '"x"', "[[1]]", "{}", "1e9"];
  const dir = join(root, "fuzz");
  mkdirSync(dir);
  let ok = 0, refused = 0;
  for (let i = 0; i < 400; i++) {
    let text = good;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const at = Math.floor(r() * (text.length + 1));
      switch (Math.floor(r() * 4)) {
        case 0: text = text.slice(0, at) + pick(tokens) + text.slice(at); break;
        case 1: text = text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 12)); break;
        case 2: text = text.replace(/(-?\d+(\.\d+)?)/g, (m) => (r() < 0.2 ? pick(["-5", "0", "1e9", "2.5", "1e400", "-0"]) : m)); break;
        default: text = text.slice(0, at);
      }
    }
    writeFileSync(join(dir, "teacher.json"), text);
    try {
      const m = readManifest(dir);
      ok++;
      assert.ok(m.latentShape.every((s) => Number.isInteger(s) && s > 0), `case ${i}: latent shape ${m.latentShape}`);
      assert.ok(m.guidanceScales.length > 0 && m.guidanceScales.every(Number.isFinite), `case ${i}: scales`);
      assert.ok(Number.isFinite(m.defaultGuidance), `case ${i}: default guidance`);
    } catch (e) {
      assert.ok(e instanceof ConfigError, `case ${i}: ${(e as Error).stack}\n${text}`);
      assert.ok(!e.message.includes("\n") && e.message.length < 500, `case ${i}: ${e.message}`);
      refused++;
    }
  }
  assert.ok(ok > 10 && refused > 100, `${ok} loaded, ${refused} refused`);
});

test("a model that also predicts its variance (twice the latent's channels), and one with integer timesteps: one line saying what to export", async () => {
  const model = (timeType: DataTypeCode, sigma: boolean) => {
    const file = join(root, `m${n++}.onnx`);
    writeFileSync(file, encodeModel({
      opsetVersion: 17, irVersion: 8,
      graph: {
        name: "m",
        nodes: [
          node("Cast", ["t"], ["tf"], [attrInt("to", DataType.FLOAT)]), node("Reshape", ["tf", "col"], ["t4"]), node("Mul", ["x", "t4"], ["xw"]), node("Mul", ["xw", "w"], ["xt"]),
          ...(sigma ? [node("Neg", ["xt"], ["logvar"]), node("Concat", ["xt", "logvar"], ["v"], [attrInt("axis", 1)])] : [node("Identity", ["xt"], ["v"])]),
        ],
        initializers: [int64Tensor("col", [4], [-1, 1, 1, 1]), float32Tensor("w", [4, 1, 1], [1, 2, 3, 4])],
        inputs: [
          { name: "x", elemType: DataType.FLOAT, shape: ["batch", 4, 8, 8] }, { name: "t", elemType: timeType, shape: ["batch"] },
          { name: "cond", elemType: DataType.FLOAT, shape: ["batch", 8, 16] },
        ],
        outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", sigma ? 8 : 4, 8, 8] }],
      },
    }));
    return file;
  };
  await rejects(bundle(GOOD, model(DataType.FLOAT, true)), /output "v" has shape \[\d+,8,8,8\] for a latent \[\d+, 4,8,8\]; .*twice the latent's channels, .*learn_sigma: export a wrapper that returns out\.chunk\(2, dim=1\)\[0\]\)$/);
  await rejects(bundle(GOOD, model(DataType.INT64, false)), /input "t" is int64; the time input must be floating point \(the consistency loss differentiates the teacher in time; .*export it with a float timestep\)$/);
});
