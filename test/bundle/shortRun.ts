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
