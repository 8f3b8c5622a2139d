/** What the library's `sampleImages` takes and returns, for every teacher kind that draws images. */
import type { ExecutorKind, Device } from "../config/schema.ts";
import type { GuidanceSchedule } from "../method/guidance.ts";

export type SampleImagesOptions = {
  /** A run directory of `tbcm distill` (the stack teacher or a teacher bundle with a decoder); without it the shipped teacher samples. */
  run?: string;
  /** Stack only: teacher and VAE files (defaults: the run's, else the shipped ones). */
  teacher?: string;
  vae?: string;
  /** One image per prompt; a bundle's prompts must be rows of its embeddings table. */
  prompts: readonly string[];
  /** Student: 1, 2 or 4 (any n ≥ 1); teacher: its sampler's steps (default 16). */
  steps?: number;
  guidance?: number;
  /** Student only: the fresh-noise share when re-noising (default: the run's `eval.eta`). */
  eta?: number;
  /** Teacher only: where its guidance acts (default: the shipped teacher's, TEACHER_GUIDANCE_SCHEDULE). */
  guidanceSchedule?: GuidanceSchedule;
  seed?: number;
  /** Teacher only: its ODE sampler. */
  sampler?: "euler" | "trigflow";
  executor?: ExecutorKind;
  /** ONNX Runtime's device (default "cpu"; webgpu and cuda need executor onnx, README "GPU"). */
  device?: Device;
};

/** Images [n, channels, height, width] flattened, in [0, 1] (channels 1: grey, 3: RGB). */
export type SampledImages = { pixels: Float32Array; height: number; width: number; channels: 1 | 3; warnings: string[] };
