/**
 * What the bundle tests share: deterministic values and nodes for their ONNX graphs, a colour decoder, a distillation of a few steps on a tiny teacher
 * bundle, and the check that the plain-JavaScript generator of its export draws what `sampleImages` draws.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { parseConfig } from "../../src/config/schema.ts";
import { sampleImages } from "../../src/run/sample.ts";
import { loadBundleGenerator } from "../../web/tbcm-generator.js";
import { encodeModel, float32Tensor, DataType, type NodeProto } from "../../src/executor/onnxProto.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { loadBundle } from "../../src/bundle/load.ts";
import { bundleFlowStudent } from "../../src/bundle/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { loadParamTree } from "../../src/numerics/params.ts";

/** Deterministic test values: scale·sin(1.3·i + seed). */
export const values = (n: number, seed: number, scale = 0.3) => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(1.3 * i + seed));
/** A node named after its first output. */
export const node = (opType: string, inputs: string[], outputs: string[], attributes = [] as NodeProto["attributes"]): NodeProto => ({ opType, inputs, outputs, name: outputs[0], attributes });

/** A colour decoder for latents [B, 2, 4, 4]: a 1×1 Conv to 3 channels, then Sigmoid (images in [0, 1], teacher.json `{ input: "z", output: "rgb", output_range: [0, 1] }`). */
export function rgbDecoder(): Uint8Array {
  return encodeModel({
    opsetVersion: 17, irVersion: 8,
    graph: {
      name: "decoder",
      nodes: [node("Conv", ["z", "k"], ["c"]), node("Sigmoid", ["c"], ["rgb"])],
      initializers: [float32Tensor("k", [3, 2, 1, 1], values(6, 9, 1))],
      inputs: [{ name: "z", elemType: DataType.FLOAT, shape: ["batch", 2, 4, 4] }],
      outputs: [{ name: "rgb", elemType: DataType.FLOAT, shape: ["batch", 3, 4, 4] }],
    },
  });
}

/** A 2-step run's config on the bundle in `dir` (η 0.8, so the re-noising is exercised). */
export function shortRunConfig(dir: string) {
  return parseConfig({
    method: "tbcm", seed: 1, executor: "onnx", teacher: { kind: "onnx", dir },
    route: { shift: 2.5, steps: 4 }, loss: { warmup: 2 }, optim: { kind: "adamw", lr: 1e-3 },
    train: { steps: 2, prompts_per_step: 2, log_every: 1, eval_every: 2, checkpoint_every: 2 },
    eval: { samples: 16, curve_noises: 2, eta: 0.8 },
  });
}

/** `loadBundleGenerator` on the export in `out` draws the images `sampleImages` draws from `run`, at 1 and 2 steps (to `tolerance`). */
export async function assertWebGeneratorMatches(run: string, out: string, prompts: string[], tolerance = 1e-4): Promise<void> {
  const g = await loadBundleGenerator(ort, async (name: string) => readFileSync(join(out, name)));
  try {
    for (const steps of [1, 2]) {
      const want = await sampleImages({ run, prompts, steps, seed: 5 });
      const imgs = (await g.generate(prompts, { seed: 5, steps })).images;
      const d = imgs.reduce((m, x, i) => Math.max(m, Math.abs(x - want.pixels[i])), 0);
      assert.ok(d < tolerance, `web generator at ${steps} steps: max |Δ| ${d.toExponential(2)}`);
    }
  } finally {
    await g.release();
  }
}

/**
 * The export in `out` of the student of `run` (a teacher bundle `bundle` with latent [B, 2, 4, 4],
 * time input `t` [B] and one condition `cond` [B, ...condShape]), run by onnxruntime at each batch
 * size of `batches`, answers what the student answers there (guidance 2), sample for sample.
 */
export async function assertExportAnswersAtBatches(run: string, bundle: string, out: string, batches: readonly number[], condShape: readonly number[], condRows: (B: number) => Float32Array): Promise<void> {
  const student = loadParamTree(join(run, "student.safetensors")).params as never;
  const flow = bundleFlowStudent(loadBundle(bundle));
  const session = await ort.InferenceSession.create(join(out, "transformer.onnx"));
  try {
    for (const B of batches) {
      const x = normal(key(B), B * 32), s = Float32Array.from({ length: B }, (_, i) => 1 - i / (B + 1)), c = condRows(B);
      const got = (await session.run({
        latent: new ort.Tensor("float32", x, [B, 2, 4, 4]), t: new ort.Tensor("float32", s, [B]), cond: new ort.Tensor("float32", c, [B, ...condShape]),
      })).v.data as Float32Array;
      const [v, lv] = flow(tree.ref(student), np.array(x).reshape([B, 32]), np.array(s).reshape([B, 1]), np.array(c).reshape([B, ...condShape]), np.full([1, 1], 2));
      lv.dispose();
      const want = v.dataSync() as Float32Array;
      assert.equal(got.length, want.length, `batch ${B}: the file answers ${got.length / 32} samples`);
      const e = got.reduce((m, g, i) => Math.max(m, Math.abs(g - want[i])), 0);
      assert.ok(e < 1e-5, `batch ${B}: max |Δ| ${e.toExponential(2)}`);
    }
  } finally {
    await session.release();
    tree.dispose(student);
  }
}
