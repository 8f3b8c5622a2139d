/**
 * Opening a run directory of `tbcm distill`: its config (validated as a config), its teacher
 * kind (dispatched once, here), and its student as the student file states it. `tbcm sample`,
 * `eval`, `export` and the library's loaders all come through `openRun`.
 */
import { tree } from "@jax-js/jax";
import { type TbcmConfig, configFromRun, configOf } from "../config/schema.ts";
import type { Tree } from "../numerics/tree.ts";
import { loadParamTree } from "../numerics/params.ts";
import { RunDir, RunDirError } from "../train/runDir.ts";
import { type TeacherKind, teacherKind } from "./kinds.ts";
import type { GmmStudent } from "../gmm/sample.ts";

export type OpenedRun = {
  dir: RunDir;
  config: TbcmConfig;
  kind: TeacherKind;
  /** The distilled student's parameters (for the caller to dispose). */
  student(): Tree;
};

export function openRun(dir: string): OpenedRun {
  const run = RunDir.existing(dir);
  const raw = configFromRun(run.readConfigJson(), run.configPath);
  const kind = teacherKind(raw.teacher.kind);
  const config = kind.resolveConfig?.(raw) ?? raw; // what the run trained with (a bundle's scales are its teacher.json's)
  return {
    dir: run,
    config,
    kind,
    student() {
      if (!run.hasStudent()) throw new RunDirError(`"${dir}" holds no finished student (student.safetensors): run tbcm distill to the end, or --resume it`);
      const { params, metadata } = loadParamTree(run.studentPath);
      if (metadata.kind !== kind.studentKind) {
        tree.dispose(params);
        throw new RunDirError(`"${run.studentPath}" is not a student of the ${config.teacher.kind} teacher (kind "${metadata.kind}", expected "${kind.studentKind}")`);
      }
      return params;
    },
  };
}

/** The student of a finished run on the analytic teacher (for `sample`). */
export function loadStudent(runDir: string): GmmStudent {
  const run = openRun(runDir);
  if (run.config.teacher.kind === "stack") throw new RunDirError(`"${runDir}" holds a student of the text-to-image stack: draw images with sampleImages({ run, prompts })`);
  if (run.config.teacher.kind !== "gmm") throw new RunDirError(`"${runDir}" holds a student of a teacher bundle: export it (tbcm export) and run its transformer.onnx`);
  return { params: run.student() as GmmStudent["params"], config: configOf(run.config, "gmm") };
}
