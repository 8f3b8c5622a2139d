/**
 * The teacher kinds, side by side: each is a folder that implements `DistillProblem` (and knows
 * how to export its student). This table is the one place that dispatches on `teacher.kind`;
 * a new kind is a folder and one entry here.
 */
import { type TbcmConfig, configOf } from "../config/schema.ts";
import type { ExportOptions } from "../config/export.ts";
import type { Tree } from "../numerics/tree.ts";
import type { DistillProblem, EvalKeys } from "../train/problem.ts";
import type { MlpParams } from "../models/mlp.ts";
import type { DitParams } from "../models/dit.ts";
import { gmmDistillProblem } from "../gmm/problem.ts";
import { type ExportManifest as GmmExportManifest, exportGmmStudent } from "../gmm/export.ts";
import { GMM_STUDENT_KIND } from "../gmm/student.ts";
import { stackDistillProblem } from "../stack/problem.ts";
import { exportStackStudent } from "../stack/export.ts";
import { STACK_STUDENT_KIND } from "../stack/student.ts";
import { bundleConfig, bundleDistillProblem } from "../bundle/problem.ts";
import { exportBundleStudent } from "../bundle/export.ts";
import { BUNDLE_STUDENT_KIND, type BundleStudentParams } from "../bundle/student.ts";
import { sampleBundleImages } from "../bundle/generate.ts";
import { sampleStackImages } from "../stack/generate.ts";
import type { SampleImagesOptions, SampledImages } from "../eval/images.ts";

/** What `tbcm export` writes into manifest.json, by teacher kind. */
export type ExportManifest = GmmExportManifest | ReturnType<typeof exportStackStudent> | Awaited<ReturnType<typeof exportBundleStudent>>;

export interface TeacherKind {
  /** The `kind` metadata of this kind's student files. */
  readonly studentKind: string;
  /** The distillation problem of a config (its parameter tree is the kind's own: hence `any`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  problem(cfg: TbcmConfig, keys: EvalKeys): Promise<DistillProblem<any>>;
  /** Writes the export of a student (`params` not consumed) into `outDir`; returns its manifest. */
  exportStudent(cfg: TbcmConfig, params: Tree, outDir: string, o: ExportOptions): Promise<ExportManifest>;
  /** Images from a student (`params` not consumed) of a run with config `cfg`; absent for a kind without images (the analytic teacher). */
  sampleImages?(cfg: TbcmConfig, params: Tree, o: SampleImagesOptions): Promise<SampledImages>;
  /** The config a run of this kind trains with (e.g. a bundle's guidance scales from its teacher.json); default: as given. */
  resolveConfig?(cfg: TbcmConfig): TbcmConfig;
}

const KINDS: Record<TbcmConfig["teacher"]["kind"], TeacherKind> = {
  gmm: {
    studentKind: GMM_STUDENT_KIND,
    problem: async (cfg, keys) => gmmDistillProblem(configOf(cfg, "gmm"), keys),
    exportStudent: async (cfg, params, outDir, o) => exportGmmStudent(configOf(cfg, "gmm"), params as MlpParams, outDir, o),
  },
  stack: {
    studentKind: STACK_STUDENT_KIND,
    problem: (cfg, keys) => stackDistillProblem(configOf(cfg, "stack"), keys),
    exportStudent: async (cfg, params, outDir, o) => exportStackStudent(configOf(cfg, "stack"), params as DitParams, outDir, o),
    sampleImages: (cfg, params, o) => sampleStackImages(o, { config: configOf(cfg, "stack"), params: params as DitParams }),
  },
  onnx: {
    studentKind: BUNDLE_STUDENT_KIND,
    problem: (cfg, keys) => bundleDistillProblem(configOf(cfg, "onnx"), keys),
    exportStudent: (cfg, params, outDir, o) => exportBundleStudent(configOf(cfg, "onnx"), params, outDir, o),
    sampleImages: (cfg, params, o) => sampleBundleImages(configOf(cfg, "onnx"), params as BundleStudentParams, o),
    resolveConfig: (cfg) => bundleConfig(configOf(cfg, "onnx")),
  },
};

/** The implementation of a config's teacher kind. */
export function teacherKind(kind: TbcmConfig["teacher"]["kind"]): TeacherKind {
  return KINDS[kind];
}
