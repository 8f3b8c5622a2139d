/**
 * `tbcm train-evaluator`: the classifier behind FD and prompt accuracy, trained on the
 * Fashion-MNIST training split; test accuracy and the real-vs-real FD floor go into its card.
 */
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import type { StackConfig } from "../config/stack.ts";
import { executorOf } from "../config/schema.ts";
import { key, foldIn } from "../numerics/random.ts";
import { parameterCount, type Tree } from "../numerics/tree.ts";
import { type ClassifierConfig, type ClassifierParams, initClassifier, classify, crossEntropy } from "../models/classifier.ts";
import { fit } from "../train/fit.ts";
import { saveParams } from "../numerics/params.ts";
import { runFiles, loadSplit, drawIndices, pixels, writeModelCard, MACHINE } from "./common.ts";
import { FASHION_CLASSES, requireFashionMnist } from "../data/fashionMnist.ts";
import { computeReference, writeReferenceFile, referencePath } from "./evaluatorReference.ts";
import { Evaluator } from "../eval/evaluator.ts";

export function classifierConfig(cfg: StackConfig): ClassifierConfig {
  return { pixels: 784, hidden: cfg.evaluator.hidden, features: cfg.evaluator.features, classes: FASHION_CLASSES.length };
}

/** The model card's note on evaluator-reference.safetensors. */
export const REFERENCE_NOTE = "evaluator-reference.safetensors (written with the weights; again by `npx tsx scripts/evaluator-reference.ts [--floor SEED:N …]`, "
  + "checked by `… --check`) holds what an evaluation needs from the data set, so evaluations run without Fashion-MNIST installed: "
  + "the test split's feature mean and covariance (float64) and predictions, and the real-vs-real FD floor of seed 0 with 1,000 training images "
  + "(the main config's; 2.806, the floor of metrics.json and the README, a different draw from fd_floor_train_vs_test above). It names the SHA-256 of evaluator.safetensors and is ignored when that changes. Other (seed, n) floors are computed from the data when it is "
  + "installed; without it the shipped floor stands in and metrics.json's fd_floor_seed / fd_floor_samples say so.";

/** The default FD sample size (generated images per evaluation and the floor's train subset). */
export const FD_SAMPLES = 1000;

export async function trainEvaluator(cfg: StackConfig, opts: { resume?: boolean; say?: (l: string) => void; stopRequested?: () => boolean; command?: string } = {}) {
  const say = opts.say ?? (() => {});
  const c = classifierConfig(cfg);
  const e = cfg.evaluator;
  requireFashionMnist(cfg.dataDir, ["train", "test"], "tbcm train-evaluator");
  const train = loadSplit(cfg.dataDir, "train");
  const test = loadSplit(cfg.dataDir, "test");
  const runKey = foldIn(key(cfg.seed), 13);
  const K = c.classes;
  const result = await fit<ClassifierParams>({
    name: "evaluator",
    loss: (p, [images, labels]) => {
      const [features, logits] = classify(p, images);
      features.dispose();
      const loss = crossEntropy(logits, labels);
      return [loss, []];
    },
    statNames: [], batchNames: ["images", "labels"],
    batch: (s) => {
      const idx = drawIndices(foldIn(foldIn(runKey, 2), s), train, e.batch);
      const labels = new Float32Array(e.batch * K);
      idx.forEach((i, r) => { labels[r * K + train.labels[i]] = 1; });
      return [{ data: pixels(train, idx), shape: [e.batch, 784] }, { data: labels, shape: [e.batch, K] }];
    },
    steps: e.steps, lr: e.lr, schedule: { kind: "cosine", warmup: e.warmup }, weightDecay: e.weightDecay, gradClip: e.gradClip,
    emaDecay: e.ema, executor: executorOf(cfg), logEvery: e.logEvery, checkpointEvery: e.checkpointEvery,
    files: runFiles(join(cfg.modelsDir, "runs"), "evaluator"), config: JSON.stringify({ evaluator: e, seed: cfg.seed }),
    resume: opts.resume, say, stopRequested: opts.stopRequested,
  }, initClassifier(foldIn(runKey, 1), c));
  if (result.interrupted) { tree.dispose(result.params); return { interrupted: true }; }
  const path = join(cfg.modelsDir, "evaluator.safetensors");
  saveParams(path, result.params, { kind: "tbcm-evaluator", config: JSON.stringify(c) });
  const evaluator = await Evaluator.load(path, executorOf(cfg));
  const testPixels = Float32Array.from(test.images, (v) => v / 255);
  const testStats = await evaluator.statistics(testPixels);
  const accuracy = testStats.predictions.reduce((n, p, i) => n + (p === test.labels[i] ? 1 : 0), 0) / test.count;
  const n = Math.min(FD_SAMPLES, train.count);
  const subset = await evaluator.statistics(pixels(train, drawIndices(foldIn(runKey, 3), train, n)));
  const floor = subset.frechetDistance(testStats);
  // the statistics an evaluation without the data set needs, next to the weights (the default seed and FD sample size)
  writeReferenceFile(referencePath(path), await computeReference(path, evaluator, cfg.dataDir, [{ seed: cfg.seed, samples: FD_SAMPLES }]));
  await evaluator.dispose();
  say(`evaluator: test accuracy ${accuracy.toFixed(4)}, FD floor (${n} train images vs test) ${floor.toFixed(3)}`);
  writeModelCard(cfg.modelsDir, {
    name: "evaluator",
    summary: "Fashion-MNIST classifier (MLP on pixels). Penultimate (128-d) features give the Fréchet distance (FD) between image sets; its argmax gives prompt accuracy.",
    architecture: c, parameters: parameterCount(result.params as Tree),
    command: opts.command ?? "tbcm train-evaluator --config configs/fmnist-stack.yaml", config: { evaluator: e, seed: cfg.seed },
    data: `Fashion-MNIST train split (${train.count} images); accuracy on the test split (${test.count})`,
    wallClockSeconds: result.seconds, machine: MACHINE,
    metrics: { test_accuracy: accuracy, fd_floor_train_vs_test: floor, fd_floor_samples: n },
    notes: [REFERENCE_NOTE],
  });
  tree.dispose(result.params);
  return { path, accuracy, fdFloor: floor, fdSamples: n, seconds: result.seconds, interrupted: false };
}
