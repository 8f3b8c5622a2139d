/**
 * What a convolutional teacher (a UNet's blocks) costs per training step through a bundle, ONNX
 * Runtime executor: a 3×3 Conv C→C, GroupNorm, SiLU, a strided Conv down, a ConvTranspose up, a
 * skip and a grouped 3×3 Conv out, at latents [4, S, S], conditioned on a float vector. Prints the
 * median ms of training steps 2…N (the first compiles) from the run's log, and the parameter count.
 *
 *   npx tsx bench/conv-teacher.bench.ts [--channels 32] [--side 16] [--steps 10]
 */
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import "../src/numerics/threads.ts";
import { parseConfig } from "../src/config/schema.ts";
import { distill } from "../src/run/distill.ts";
import { saveSafetensors } from "../src/numerics/safetensors.ts";
import { encodeModel, float32Tensor, int64Tensor, attrInt, attrInts, DataType, type NodeProto } from "../src/executor/onnxProto.ts";
import { tempDir } from "../test/tempDir.ts";

const { values: a } = parseArgs({ options: { channels: { type: "string" }, side: { type: "string" }, steps: { type: "string" } } });
const C = Number(a.channels ?? 32), S = Number(a.side ?? 16), steps = Number(a.steps ?? 10);
const wave = (n: number, seed: number, scale: number) => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(1.3 * i + seed));
const node = (opType: string, inputs: string[], outputs: string[], attributes = [] as NodeProto["attributes"]): NodeProto => ({ opType, inputs, outputs, name: outputs[0], attributes });
const dir = tempDir("tbcm-conv-bench-"), bundle = join(dir, "bundle");
mkdirSync(bundle);
const k = (fanIn: number) => 1 / Math.sqrt(fanIn);
writeFileSync(join(bundle, "transformer.onnx"), encodeModel({
  opsetVersion: 18, irVersion: 8,
  graph: {
    name: "unet_blocks",
    nodes: [
      node("Conv", ["x", "w0", "b0"], ["h0"], [attrInts("pads", [1, 1, 1, 1])]),
      node("Unsqueeze", ["t", "axes123"], ["t4"]), node("Mul", ["t4", "w_t"], ["tt"]), node("Sin", ["tt"], ["temb"]),
      node("MatMul", ["c", "w_c"], ["ce"]), node("Unsqueeze", ["ce", "axes23"], ["ce4"]),
      node("Sum", ["h0", "temb", "ce4"], ["h1"]),
      node("Conv", ["h1", "w1", "b1"], ["h2"], [attrInts("pads", [1, 1, 1, 1])]),
      node("GroupNormalization", ["h2", "gs", "gb"], ["g"], [attrInt("num_groups", 8)]),
      node("Sigmoid", ["g"], ["gsig"]), node("Mul", ["g", "gsig"], ["act"]),
      node("Conv", ["act", "w2"], ["down"], [attrInts("strides", [2, 2]), attrInts("pads", [1, 1, 1, 1])]),
      node("Tanh", ["down"], ["dt"]),
      node("ConvTranspose", ["dt", "w3"], ["up"], [attrInts("strides", [2, 2]), attrInts("pads", [1, 1, 1, 1]), attrInts("output_padding", [1, 1])]),
      node("Add", ["up", "act"], ["skip"]),
      node("Conv", ["skip", "w4"], ["v"], [attrInts("pads", [1, 1, 1, 1]), attrInt("group", 2)]),
    ],
    initializers: [
      float32Tensor("w0", [C, 4, 3, 3], wave(C * 36, 1, k(36))), float32Tensor("b0", [C], wave(C, 2, 0.1)),
      float32Tensor("w_t", [1, C, 1, 1], wave(C, 3, 2)), float32Tensor("w_c", [16, C], wave(16 * C, 4, k(16))),
      float32Tensor("w1", [C, C, 3, 3], wave(C * C * 9, 5, k(9 * C))), float32Tensor("b1", [C], wave(C, 6, 0.1)),
      float32Tensor("gs", [C], wave(C, 7, 0.2).map((v) => 1 + v)), float32Tensor("gb", [C], wave(C, 8, 0.1)),
      float32Tensor("w2", [C, C, 3, 3], wave(C * C * 9, 9, k(9 * C))), float32Tensor("w3", [C, C, 3, 3], wave(C * C * 9, 10, k(9 * C))),
      float32Tensor("w4", [4, C / 2, 3, 3], wave(4 * C / 2 * 9, 11, k(9 * C / 2))),
      int64Tensor("axes123", [3], [1, 2, 3]), int64Tensor("axes23", [2], [2, 3]),
    ],
    inputs: [
      { name: "x", elemType: DataType.FLOAT, shape: ["batch", 4, S, S] }, { name: "t", elemType: DataType.FLOAT, shape: ["batch"] },
      { name: "c", elemType: DataType.FLOAT, shape: ["batch", 16] },
    ],
    outputs: [{ name: "v", elemType: DataType.FLOAT, shape: ["batch", 4, S, S] }],
  },
}));
const prompts = ["", "a", "b", "c", "d"];
saveSafetensors(join(bundle, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [prompts.length, 16], data: wave(prompts.length * 16, 12, 1) }]]), { prompts: JSON.stringify(prompts) });
writeFileSync(join(bundle, "teacher.json"), JSON.stringify({ format: "tbcm-teacher-bundle-1", latent_shape: [4, S, S], transformer: { inputs: { latent: "x", time: "t", condition: "c" }, output: "v", prediction: "flow_velocity" }, guidance_scales: [3] }));
const run = join(dir, "run");
await distill(parseConfig({
  method: "tbcm", seed: 0, executor: "onnx", teacher: { kind: "onnx", dir: bundle }, route: { shift: 2.5, steps: 16 },
  optim: { kind: "adamw", lr: 1e-4 }, train: { steps, prompts_per_step: 4, log_every: 1, eval_every: steps, checkpoint_every: steps },
  eval: { samples: 16, curve_noises: 2 },
}), run);
const times = readFileSync(join(run, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((e) => typeof e.loss === "number").map((e) => e.time_s as number);
const per = times.slice(1).map((t, i) => t - times[i]).sort((x, y) => x - y);
const params = C * 36 + C + C + 16 * C + 2 * (C * C * 9) + C * C * 9 + 2 * C + 4 * (C / 2) * 9 + C;
console.log(`| conv teacher [4, ${S}, ${S}], ${C} channels (${params.toLocaleString("en")} parameters), 4 prompts × 15 pairs | ${(1000 * per[Math.floor(per.length / 2)]).toFixed(0)} ms / step (median of steps 2–${steps}) |`);
