/** The library's `sampleImages`: text → images from a run's student (its teacher kind draws them), or from the shipped teacher. */
import { tree } from "@jax-js/jax";
import type { SampleImagesOptions, SampledImages } from "../eval/images.ts";
import { sampleStackImages } from "../stack/generate.ts";
import { RunDirError } from "../train/runDir.ts";
import { openRun } from "./open.ts";

/**
 * One image per prompt, pixels [n·channels·height·width] in [0, 1]; deterministic in `seed`. With
 * `run`, its student draws them (a stack run, or a bundle run whose bundle has a decoder); without,
 * the shipped teacher.
 */
export async function sampleImages(o: SampleImagesOptions): Promise<SampledImages> {
  if (!o.run) return sampleStackImages(o);
  const run = openRun(o.run);
  if (!run.kind.sampleImages) throw new RunDirError(`"${o.run}" is a run on the ${run.config.teacher.kind} teacher, which has no images: draw its student's samples with sample()`);
  const params = run.student();
  try {
    return await run.kind.sampleImages(run.config, params, o);
  } finally {
    tree.dispose(params);
  }
}
