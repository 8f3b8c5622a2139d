/**
 * The library's `distill`: a config and a directory in, a distilled student, its metrics and a
 * report out. It claims the run directory, builds the teacher kind's problem, and hands both to
 * the loop (`trainStudent`). `evaluateRun` measures a finished run again.
 */
import { foldIn, key } from "../numerics/random.ts";
import { type TbcmConfig, type Device, checkExecutorDevice } from "../config/schema.ts";
import { type DistillOptions, type DistillResult, STREAM, evalKeys, initialStudent, reportTitle, trainStudent } from "../train/distill.ts";
import { RunDir } from "../train/runDir.ts";
import { tree } from "@jax-js/jax";
import { writeReport } from "../eval/report.ts";
import { teacherKind } from "./kinds.ts";
import { openRun } from "./open.ts";
import { probeDevice } from "../executor/onnxRun.ts";

/** Runs a distillation into `outDir`: student.safetensors, checkpoint.safetensors, log.jsonl, metrics.json, config.json, report.md. */
export async function distill(config: TbcmConfig, outDir: string, opts: DistillOptions = {}): Promise<DistillResult> {
  // Everything that can reject the input runs before the run directory is touched.
  const kind = teacherKind(config.teacher.kind);
  const cfg = kind.resolveConfig?.(config) ?? config;
  checkExecutorDevice(cfg.executor, cfg.device);
  await probeDevice(cfg.device);
  const problem = await kind.problem(cfg, evalKeys(cfg.seed));
  let run: RunDir | undefined;
  try {
    const initial = initialStudent(problem, cfg);
    try {
      run = RunDir.claim(outDir, opts.resume ?? false);
    } catch (e) {
      tree.dispose(initial);
      throw e;
    }
    return await trainStudent(problem, cfg, initial, run, opts);
  } finally {
    problem.dispose();
    run?.release();
  }
}

/**
 * Evaluates the student of a finished run again (e.g. after changing `eval` settings); rewrites
 * metrics.json and report.md. `device`: ONNX Runtime's device (default: the run's config's).
 */
export async function evaluateRun(runDir: string, evalOverrides: Partial<TbcmConfig["eval"]> = {}, say?: (line: string) => void, device?: Device): Promise<Record<string, unknown>> {
  const opened = openRun(runDir);
  if (device !== undefined) checkExecutorDevice(opened.config.executor, device, "device");
  await probeDevice(device ?? opened.config.device);
  const cfg: TbcmConfig = { ...opened.config, ...(device === undefined ? {} : { device }), eval: { ...opened.config.eval, ...evalOverrides } };
  const params = opened.student();
  const problem = await opened.kind.problem(cfg, evalKeys(cfg.seed));
  try {
    const metrics = await problem.evaluate(params, runDir, foldIn(key(cfg.seed), STREAM.eval), say);
    const full = { ...opened.dir.readMetrics(), ...metrics };
    opened.dir.writeMetrics(full);
    writeReport(runDir, reportTitle(cfg), full as Record<string, number>, cfg);
    return full;
  } finally {
    problem.dispose();
    tree.dispose(params);
  }
}
