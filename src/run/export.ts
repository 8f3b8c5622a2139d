/** `tbcm export`: the student of a finished run as ONNX files and a manifest, in its teacher kind's format. */
import { tree } from "@jax-js/jax";
import type { ExportOptions } from "../config/export.ts";
import type { ExportManifest } from "./kinds.ts";
import { openRun } from "./open.ts";

/** Writes the export of `runDir`'s student into `outDir` for batch size `batch`; returns the manifest. */
export async function exportStudent(runDir: string, outDir: string, batch = 1, o: Omit<ExportOptions, "batch"> = {}): Promise<ExportManifest> {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be an integer ≥ 1, got ${batch}`);
  const run = openRun(runDir);
  const params = run.student();
  try {
    return await run.kind.exportStudent(run.config, params, outDir, { ...o, batch });
  } finally {
    tree.dispose(params);
  }
}
