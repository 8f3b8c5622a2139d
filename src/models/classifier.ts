/**
 * The evaluator: a Fashion-MNIST classifier (MLP on pixels). Its penultimate features give the
 * Fréchet distance between image sets; its argmax gives prompt accuracy.
 */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import { type Linear, initLinear, linear } from "./layers.ts";

export type ClassifierConfig = { readonly pixels: number; readonly hidden: number; readonly features: number; readonly classes: number };
export type ClassifierParams = { fc1: Linear; fc2: Linear; fc3: Linear; head: Linear };

export function initClassifier(k: Key, c: ClassifierConfig): ClassifierParams {
  return {
    fc1: initLinear(foldIn(k, 1), c.pixels, c.hidden), fc2: initLinear(foldIn(k, 2), c.hidden, c.hidden / 2),
    fc3: initLinear(foldIn(k, 3), c.hidden / 2, c.features), head: initLinear(foldIn(k, 4), c.features, c.classes),
  };
}

/** Images [B, 784] in [0, 1] → `[features [B, F], logits [B, classes]]`. */
export function classify(p: ClassifierParams, images: Array): [Array, Array] {
  const h = nn.silu(linear(p.fc2, nn.silu(linear(p.fc1, images.mul(2).sub(1)))));
  const features = nn.silu(linear(p.fc3, h));
  return [features.ref, linear(p.head, features)];
}

/** Mean cross-entropy of logits [B, K] against one-hot labels [B, K]. */
export function crossEntropy(logits: Array, oneHot: Array): Array {
  return np.mean(np.sum(nn.logSoftmax(logits, -1).mul(oneHot), -1)).mul(-1);
}
