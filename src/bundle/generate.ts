/**
 * Text → images with a bundle run's student: prompts looked up in the bundle's embeddings table,
 * the student's 1–4 step sampler (the run's evaluation sampler), then the bundle's own decoder.
 * The library's `sampleImages` (src/run/sample.ts) opens the run and calls this.
 */
import { join } from "node:path";
import { type BundleConfig, ConfigError, executorOf, executorParts } from "../config/schema.ts";
import { key, foldIn, normal } from "../numerics/random.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import type { SampleImagesOptions, SampledImages } from "../eval/images.ts";
import { studentSampleLatents } from "../eval/studentSamples.ts";
import { BUNDLE_ROWS, loadBundle, tableRows } from "./load.ts";
import { hasDecoder, loadBundleDecoder } from "./decoder.ts";
import { isUnconditional } from "./manifest.ts";
import { type BundleStudentParams, bundleStudent, guidanceConditioned } from "./student.ts";

/** One image per prompt from the student `params` (not consumed) of a run with config `cfg` (as the run resolved it). */
export async function sampleBundleImages(cfg: BundleConfig, params: BundleStudentParams, o: SampleImagesOptions): Promise<SampledImages> {
  if (o.prompts.length === 0) throw new Error("give at least one prompt");
  const executor = executorOf({ executor: o.executor ?? cfg.executor, device: o.device ?? "cpu" });
  const b = loadBundle(cfg.teacher.dir, executorParts(executor).kind);
  const table = join(b.dir, b.manifest.promptEmbeddings.file);
  if (!hasDecoder(b)) throw new ConfigError(`the teacher bundle "${b.dir}" has no VAE decoder (teacher.json: vae_decoder), so its student draws latents, not images: tbcm export writes the student for your own pipeline`);
  const missing = o.prompts.find((p) => !b.table.index.has(p));
  if (missing !== undefined && isUnconditional(b.manifest)) throw new ConfigError(`the teacher bundle "${b.dir}" is unconditional: it takes no prompt (give the empty prompt, --prompt "", once per row of images), not ${JSON.stringify(missing)}`);
  if (missing !== undefined) throw new ConfigError(`prompt ${JSON.stringify(missing)} is not in the bundle's embeddings table "${table}" (${b.table.prompts.length} prompts): add its embedding to the table`);
  const warnings: string[] = [];
  const guidance = o.guidance ?? cfg.eval.guidance;
  if (!guidanceConditioned(b) && guidance !== cfg.eval.guidance) warnings.push(`the student was distilled at guidance ${cfg.eval.guidance} only (no time_embedding in teacher.json): guidance ${guidance} changes nothing`);
  const n = o.prompts.length, d = b.dim;
  const cond: HostTensor = { data: tableRows(b.table, o.prompts.map((p) => b.table.index.get(p)!)), shape: [n, ...b.table.shape] };
  const w: HostTensor = { data: new Float32Array(n).fill(guidance), shape: [n, 1] };
  const k = key(o.seed ?? 0);
  const z = await studentSampleLatents(executor, bundleStudent(b), params, o.steps ?? 1, normal(foldIn(k, 0), n * d), cond, w, foldIn(k, 1),
    { ...cfg.eval, ...(o.eta === undefined ? {} : { eta: o.eta }) }, BUNDLE_ROWS);
  const decoder = loadBundleDecoder(b, executor);
  try {
    return { ...(await decoder.decode(z, n)), warnings };
  } finally {
    await decoder.dispose();
  }
}
