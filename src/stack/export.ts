/**
 * `tbcm export` for a student of the default stack: three standard-ops ONNX files with their
 * weights baked in, and a manifest a Node or browser app can follow:
 *   text_encoder.onnx  token_ids [B, L] (float ids, 0 = padding) → cond [B, L+1, D+1]
 *   generator.onnx     noise [B, d], cond, guidance [B, 1] (, noise_step2 … noise_stepN [B, d])
 *                      → latent [B, d]   (n student steps, n = 1 by default)
 *   vae_decoder.onnx   latent [B, d] → image [B, 784] in [0, 1]
 * The manifest carries the vocabulary and the tokenizer's rule (lower-case, split on anything but
 * letters, digits and '-', unknown words → id 1).
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { SIGMA_D, RENOISE_ETA } from "../config/defaults.ts";
import type { StackDistillConfig } from "../config/schema.ts";
import type { DitParams } from "../models/dit.ts";
import { encodeText } from "../models/textEncoder.ts";
import { vaeDecode } from "../models/vae.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";
import { lowerFunction, avalSpec } from "../executor/lower.ts";
import { loadTeacher, loadVae } from "./load.ts";
import { ditStudent } from "./student.ts";
import type { ExportOptions } from "../config/export.ts";

const INT8 = "int8 (dynamic: uint8 activations per tensor, int8 weights per column)";

/** Writes the export of a stack student (`params` not consumed) into `outDir`; returns its manifest. */
export function exportStackStudent(config: StackDistillConfig, params: DitParams, outDir: string, o: ExportOptions) {
  const batch = o.batch;
  const teacher = loadTeacher(config.teacher.model);
  const vae = loadVae(config.teacher.vae);
  const { text, dit, tokenizer } = teacher;
  const d = teacher.latentDim, L = text.maxWords, M = L + 1, C = text.width + 1;
  mkdirSync(outDir, { recursive: true });
  const files: Record<string, Record<string, number>> = {};
  const flops: Record<string, number> = {};
  const write = (name: string, f: (...xs: Array[]) => Array, shapes: number[][], inputNames: string[], outputNames: string[], int8 = false) => {
    const lowered = lowerFunction(f, shapes.map((s) => avalSpec(s)) as never, { name: name.replace(".onnx", ""), inputNames, outputNames, inference: { int8 } });
    writeFileSync(join(outDir, name), lowered.model);
    files[name] = { ...lowered.opCounts };
    flops[name] = lowered.matmulFlops;
  };
  const vocab = np.arange(text.vocab).astype(np.float32).reshape([1, 1, text.vocab]);
  write("text_encoder.onnx", (ids: Array) => {
    const oneHot = np.equal(ids.ref.reshape([batch, L, 1]), vocab.ref).astype(np.float32);
    const mask = np.concatenate([np.ones([batch, 1]), np.notEqual(ids, 0).astype(np.float32)], 1);
    return encodeText(tree.ref(teacher.params.text), text, oneHot, mask);
  }, [[batch, L]], ["token_ids"], ["cond"]);
  const steps = o.steps ?? 1;
  const timesteps = studentTimesteps(steps, config.eval.twoStepMid, undefined, config.eval.multiStep);
  const eta = o.eta ?? config.eval.eta ?? RENOISE_ETA;
  const laterNoiseNames = globalThis.Array.from({ length: steps - 1 }, (_, i) => `noise_step${i + 2}`);
  const student = ditStudent(dit);
  write("generator.onnx", (noise: Array, cond: Array, w: Array, ...laterNoises: Array[]) => {
    const x0 = sampleStudent(studentAsVelocity(student, params, w), [noise, ...laterNoises], timesteps, cond, eta);
    w.dispose();
    return x0.div(SIGMA_D);
  }, [[batch, d], [batch, M, C], [batch, 1], ...laterNoiseNames.map(() => [batch, d])], ["noise", "cond", "guidance", ...laterNoiseNames], ["latent"], o.int8 ?? false);
  write("vae_decoder.onnx", (z: Array) => np.clip(vaeDecode(tree.ref(vae.params), vae.config, z.div(vae.scale)), 0, 1),
    [[batch, d]], ["latent"], ["image"], o.int8Decoder ?? o.int8 ?? false);
  vocab.dispose();
  tree.dispose([teacher.params as never, vae.params as never]);
  const manifest = {
    format: "tbcm-onnx-text-to-image-1",
    models: { text_encoder: "text_encoder.onnx", generator: "generator.onnx", vae_decoder: "vae_decoder.onnx" },
    inputs: {
      token_ids: { shape: [batch, L], meaning: "word ids as float32, 0-padded; ids from `vocab` (index = id), unknown words → 1" },
      noise: { shape: [batch, d], meaning: "unit Gaussian noise" },
      guidance: { shape: [batch, 1], meaning: `guidance scale fed to the student's guidance embedding (trained on ${config.guidance.join(", ")})` },
      ...Object.fromEntries(laterNoiseNames.map((n, i) => [n, { shape: [batch, d], meaning: `unit Gaussian noise for the re-noising before step ${i + 2}` }])),
    },
    outputs: { image: { shape: [batch, 28 * 28], meaning: "grey pixels in [0, 1], row-major 28×28" } },
    tokenizer: { vocab: tokenizer.vocab, max_words: L, rule: "lower-case; split on [^a-z0-9-]+; drop empty; pad with 0" },
    sigma_d: SIGMA_D,
    steps,
    timesteps,
    renoise_eta: eta,
    guidance_scales: [...config.guidance],
    default_guidance: config.eval.guidance,
    generator_matmuls: o.int8 ? INT8 : "float32",
    decoder_matmuls: o.int8Decoder ?? o.int8 ? INT8 : "float32",
    op_counts: files,
    matmul_flops: flops,
  };
  writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
