/** The library's `sampleImages`: text → images from a run's student, or from the shipped teacher. */
import { tree } from "@jax-js/jax";
import type { DitParams } from "../models/dit.ts";
import { type SampleImagesOptions, type SampledImages, sampleStackImages } from "../stack/generate.ts";
import { RunDirError } from "../train/runDir.ts";
import { configOf } from "../config/schema.ts";
import { openRun } from "./open.ts";

/** One 28×28 image per prompt, pixels [n·784] in [0, 1]; deterministic in `seed`. */
export async function sampleImages(o: SampleImagesOptions): Promise<SampledImages> {
  if (!o.run) return sampleStackImages(o);
  const run = openRun(o.run);
  if (run.config.teacher.kind !== "stack") throw new RunDirError(`"${o.run}" is a run on the ${run.config.teacher.kind} teacher; images need a run on the stack teacher`);
  const config = configOf(run.config, "stack");
  const params = run.student() as DitParams;
  try {
    return await sampleStackImages(o, { config, params });
  } finally {
    tree.dispose(params);
  }
}
