/** The evaluator at work: features, predictions and Fréchet distance of image sets. */
import { tree } from "@jax-js/jax";
import type { Executor } from "../config/schema.ts";
import { checkModelSizes } from "../config/limits.ts";
import { type ClassifierConfig, type ClassifierParams, initClassifier, classify } from "../models/classifier.ts";
import { loadParams } from "../numerics/params.ts";
import { loadSafetensors } from "../numerics/safetensors.ts";
import { key } from "../numerics/random.ts";
import { inference, inChunks, type Inference } from "../executor/inference.ts";
import { featureMoments, frechetDistance } from "./frechet.ts";
import { shippedPath } from "../paths.ts";

export class ImageStatistics {
  constructor(readonly mean: Float64Array, readonly cov: Float64Array, readonly predictions: Int32Array,
    /** The images' features [n·D] (for paired comparisons, src/eval/paired.ts); none in a shipped reference. */
    readonly features: Float32Array = new Float32Array(0)) {}

  frechetDistance(other: ImageStatistics): number {
    return frechetDistance(this.mean, this.cov, other.mean, other.cov);
  }

  /** Fraction of images classified as the label asked for. */
  accuracy(labels: ArrayLike<number>): number {
    let hit = 0;
    for (let i = 0; i < this.predictions.length; i++) if (this.predictions[i] === labels[i]) hit++;
    return hit / this.predictions.length;
  }
}

export class Evaluator {
  private constructor(readonly config: ClassifierConfig, private readonly params: ClassifierParams, private readonly program: Inference,
    /** The file it was loaded from (its shipped reference statistics sit next to it). */
    readonly path: string) {}

  static async load(path: string, executor: Executor = "onnx"): Promise<Evaluator> {
    const { metadata } = loadSafetensors(path);
    if (metadata.kind !== "tbcm-evaluator") throw new Error(`"${path}" is not a tbcm evaluator (kind ${metadata.kind})`);
    let raw: unknown;
    try {
      raw = JSON.parse(metadata.config ?? "");
    } catch {
      raw = undefined;
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`"${path}": metadata "config" is not a JSON object (a damaged file?)`);
    const config = checkModelSizes(path, "config", raw as Record<string, unknown>) as ClassifierConfig;
    const like = initClassifier(key(0), config);
    const { params } = loadParams(path, like);
    tree.dispose(like);
    return new Evaluator(config, params, inference(executor, params, (p, x) => classify(p, x), "evaluator"), shippedPath(path));
  }

  /** Features and predictions of images [n·784] in [0, 1]. */
  async statistics(pixels: Float32Array): Promise<ImageStatistics> {
    const n = pixels.length / this.config.pixels;
    const [features, logits] = await inChunks(this.program, [{ data: pixels, shape: [n, this.config.pixels] }], n, Math.min(n, 1000));
    const { mean, cov } = featureMoments(features.data, n, this.config.features);
    const K = this.config.classes;
    const predictions = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (logits.data[i * K + k] > logits.data[i * K + best]) best = k;
      predictions[i] = best;
    }
    return new ImageStatistics(mean, cov, predictions, features.data);
  }

  async dispose(): Promise<void> {
    await this.program.dispose();
    tree.dispose(this.params);
  }
}
