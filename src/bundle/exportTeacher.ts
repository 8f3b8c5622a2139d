/**
 * `tbcm export-teacher --out <dir>`: the shipped Fashion-MNIST teacher (models/fmnist) written as
 * a teacher bundle — the format's first user and its round-trip check (test/bundle/):
 *   transformer.onnx   latent [batch, 7, 7, 4] (the stack's channels-last latent), timestep
 *                      [batch] (= 1000·s), encoder_hidden_states [batch, 9, 65] (the text
 *                      encoder's tokens + mask channel) → velocity [batch, 7, 7, 4] (v = ε − x0);
 *                      the time embedding [batch, 128] is the tensor "time_embedding"
 *   prompt_embeddings.safetensors   "embeddings" [P, 9, 65] + metadata "prompts" (prompts/train.txt,
 *                      prompts/eval.txt and "", encoded once by the shipped text encoder)
 *   vae_decoder.onnx   latent [batch, 7, 7, 4] (unscaled: latent / latent_scaling_factor) → image
 *                      [batch, 1, 28, 28] in [0, 1]
 *   teacher.json       the manifest
 * Weights are initializers (float32); the batch axis is symbolic.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { ExecutorKind } from "../config/schema.ts";
import { GUIDANCE_SCALES } from "../config/defaults.ts";
import { ditFlow } from "../models/dit.ts";
import { vaeDecode } from "../models/vae.ts";
import { lowerFunction, avalSpec } from "../executor/lower.ts";
import { saveSafetensors } from "../numerics/safetensors.ts";
import { namedLeaves } from "../numerics/tree.ts";
import { readPromptFile } from "../data/prompts.ts";
import { loadTeacher, loadVae } from "../stack/load.ts";
import { textEncoderProgram, encodeConditions } from "../stack/pipeline.ts";
import { BUNDLE_FORMAT } from "./manifest.ts";

/** The batch the files are traced at before their batch axis is made symbolic (a size no other axis has). */
const TRACE_BATCH = 11;
/** The exported denoiser's time input is 1000·s (diffusers' convention), to exercise time_scale. */
const TIME_SCALE = 1000;

export type ExportTeacherOptions = {
  teacher?: string;
  vae?: string;
  /** Prompt files whose prompts go into the table (the empty prompt is always added). */
  promptFiles?: readonly string[];
  executor?: ExecutorKind;
};

/** Writes the shipped teacher as a bundle into `outDir`; returns the manifest. */
export async function exportTeacherBundle(outDir: string, o: ExportTeacherOptions = {}) {
  const teacher = loadTeacher(o.teacher ?? "models/fmnist/teacher.safetensors");
  const vae = loadVae(o.vae ?? "models/fmnist/vae.safetensors");
  const { dit, text } = teacher;
  const B = TRACE_BATCH, d = teacher.latentDim;
  const latent = [dit.side, dit.side, dit.channels];
  const M = text.maxWords + 1, C = text.width + 1;
  mkdirSync(outDir, { recursive: true });
  const batch = { size: B, name: "batch" };

  const transformer = lowerFunction((x: Array, ts: Array, c: Array) => {
    let temb: Array | undefined;
    const [v, lv] = ditFlow(tree.ref(teacher.params.dit), dit, x.reshape([B, d]), ts.reshape([B, 1]).div(TIME_SCALE), c, undefined, { timeEmbedding: (t) => { temb = t; } });
    lv.dispose();
    return [v.reshape([B, ...latent]), temb!];
  }, [avalSpec([B, ...latent]), avalSpec([B]), avalSpec([B, M, C])] as never, {
    name: "fmnist_dit", inputNames: ["latent", "timestep", "encoder_hidden_states"], outputNames: ["velocity", "time_embedding"],
    namedTensors: ["time_embedding"], batch,
    // the DiT's weights carry their names (dit.blocks.0.selfAttn.q.w …); the student trains those, not the graph's other constants
    constNames: new Map(namedLeaves(teacher.params.dit).map(([n, a]) => [a, `dit.${n}`])),
  });
  writeFileSync(join(outDir, "transformer.onnx"), transformer.model);

  const decoder = lowerFunction((z: Array) => np.clip(vaeDecode(tree.ref(vae.params), vae.config, z.reshape([B, d])), 0, 1).reshape([B, 1, 28, 28]),
    [avalSpec([B, ...latent])] as never, { name: "fmnist_vae_decoder", inputNames: ["latent"], outputNames: ["image"], batch });
  writeFileSync(join(outDir, "vae_decoder.onnx"), decoder.model);

  const files = o.promptFiles ?? ["prompts/train.txt", "prompts/eval.txt"];
  const prompts = [...new Set([...files.flatMap((f) => readPromptFile(f)), ""])];
  const program = textEncoderProgram(teacher, o.executor ?? "onnx");
  const table = await encodeConditions(program, teacher, prompts);
  await program.dispose();
  saveSafetensors(join(outDir, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [prompts.length, M, C], data: table.data }]]), {
    prompts: JSON.stringify(prompts), encoder: "the shipped Fashion-MNIST text encoder (models/fmnist/teacher.safetensors): [P, 9, 65] = 8 word tokens + start token, 64-d + mask channel",
  });

  const manifest = {
    format: BUNDLE_FORMAT,
    latent_shape: latent,
    latent_scaling_factor: vae.scale,
    transformer: {
      file: "transformer.onnx",
      inputs: { latent: "latent", time: "timestep", condition: "encoder_hidden_states" },
      output: "velocity",
      time_scale: TIME_SCALE,
      prediction: "flow_velocity",
      time_embedding: "time_embedding",
      trainable: ["dit."],
    },
    prompt_embeddings: { file: "prompt_embeddings.safetensors", empty_prompt: "" },
    guidance_scales: [...GUIDANCE_SCALES],
    default_guidance: 4.5,
    black_latent: vae.blackLatent,
    vae_decoder: { file: "vae_decoder.onnx", input: "latent", output: "image", output_range: [0, 1] },
  };
  writeFileSync(join(outDir, "teacher.json"), JSON.stringify(manifest, null, 2) + "\n");
  tree.dispose([teacher.params as never, vae.params as never]);
  return manifest;
}
