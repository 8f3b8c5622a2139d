/**
 * `tbcm export` for a student of the analytic teacher: the 1-step sCM sampler (spec §6) with
 * the student's weights baked in as initializers, lowered to a standard-ops ONNX file
 * (noise [B, d], cond [B, C], guidance [B, 1]) → latent z [B, d]; plus a manifest with what a
 * caller needs (inputs and shapes, σ_d, timesteps, prompts, guidance scales).
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Array } from "@jax-js/jax";
import { SIGMA_D } from "../config/defaults.ts";
import type { GmmConfig } from "../config/schema.ts";
import type { MlpParams } from "../models/mlp.ts";
import { sampleStudent, studentTimesteps, studentAsVelocity } from "../method/sampler.ts";
import { lowerFunction, avalSpec } from "../executor/lower.ts";
import type { ExportOptions } from "../config/export.ts";
import { gmmPromptNames } from "./teacher.ts";
import { mlpStudent } from "./student.ts";

export type ExportManifest = {
  format: "tbcm-onnx-generator-1";
  model: string;
  inputs: { name: string; shape: number[]; meaning: string }[];
  outputs: { name: string; shape: number[]; meaning: string }[];
  sigma_d: number;
  timesteps: number[];
  prompts: string[];
  guidance_scales: number[];
  op_counts: Record<string, number>;
};

/** Writes `generator.onnx` and `manifest.json` into `outDir` (`params` not consumed). */
export function exportGmmStudent(config: GmmConfig, params: MlpParams, outDir: string, o: ExportOptions): ExportManifest {
  if (o.int8) throw new Error("--int8 applies to students of the stack teacher");
  if ((o.steps ?? 1) !== 1 || o.eta !== undefined) throw new Error("--steps and --eta apply to students of the stack teacher (this export is one step)");
  const batch = o.batch;
  const d = config.teacher.dim, C = config.teacher.prompts;
  const timesteps = studentTimesteps(1);
  const generate = (noise: Array, cond: Array, w: Array) => {
    const x0 = sampleStudent(studentAsVelocity(mlpStudent, params, w), [noise], timesteps, cond);
    w.dispose();
    return x0.div(SIGMA_D);
  };
  const lowered = lowerFunction(generate, [avalSpec([batch, d]), avalSpec([batch, C]), avalSpec([batch, 1])] as never, {
    name: "tbcm_generator", inputNames: ["noise", "cond", "guidance"], outputNames: ["latent"], inference: { int8: false },
  });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "generator.onnx"), lowered.model);
  const manifest: ExportManifest = {
    format: "tbcm-onnx-generator-1",
    model: "generator.onnx",
    inputs: [
      { name: "noise", shape: [batch, d], meaning: "unit Gaussian noise" },
      { name: "cond", shape: [batch, C], meaning: "one-hot prompt rows (order of `prompts`); an all-zero row is the empty prompt" },
      { name: "guidance", shape: [batch, 1], meaning: "guidance scale w fed to the guidance embedding" },
    ],
    outputs: [{ name: "latent", shape: [batch, d], meaning: "sample z (scaled latent), one student step from t = π/2" }],
    sigma_d: SIGMA_D,
    timesteps,
    prompts: gmmPromptNames(C),
    guidance_scales: [...config.guidance],
    op_counts: { ...lowered.opCounts },
  };
  writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
