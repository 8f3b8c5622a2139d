/**
 * Fashion-MNIST (Xiao et al. 2017; MIT), from the IDX files of Debian's `dataset-fashion-mnist`
 * or a folder given by `TBCM_FASHION_MNIST_DIR`. 28×28 grey images, 10 classes.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readIdx } from "./idx.ts";

export const FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist";

/** Class names in label order. */
export const FASHION_CLASSES = [
  "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
] as const;

export type Split = "train" | "test";

export type ImageSet = {
  /** Pixels 0..255, row-major, n × 28 × 28. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
};

const FILES: Record<Split, [string, string]> = {
  train: ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
  test: ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
};

function locate(dir: string, name: string): string {
  for (const candidate of [join(dir, `${name}.gz`), join(dir, name)]) if (existsSync(candidate)) return candidate;
  throw new Error(`Fashion-MNIST file ${name}(.gz) not found in ${dir}: install it with `
    + `"apt-get install dataset-fashion-mnist", or set TBCM_FASHION_MNIST_DIR to a folder holding the IDX files`);
}

/** Loads a split; checks that images and labels agree. */
export function loadFashionMnist(split: Split, dir = process.env.TBCM_FASHION_MNIST_DIR || FASHION_MNIST_DEFAULT_DIR): ImageSet {
  const [imageName, labelName] = FILES[split];
  const images = readIdx(locate(dir, imageName));
  const labels = readIdx(locate(dir, labelName));
  if (images.shape.length !== 3 || labels.shape.length !== 1 || images.shape[0] !== labels.shape[0]) {
    throw new Error(`Fashion-MNIST ${split}: image shape [${images.shape}] and label shape [${labels.shape}] do not match`);
  }
  const bad = labels.data.findIndex((l) => l >= FASHION_CLASSES.length);
  if (bad >= 0) throw new Error(`Fashion-MNIST ${split}: label ${labels.data[bad]} at index ${bad} is not a class`);
  return { images: images.data, labels: labels.data, count: images.shape[0], height: images.shape[1], width: images.shape[2] };
}
