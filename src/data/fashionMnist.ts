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

/** How to get the data set (one line). */
export const fashionMnistHint = `install it with "apt-get install dataset-fashion-mnist", or set TBCM_FASHION_MNIST_DIR to a folder holding the IDX files`;

function find(dir: string, name: string): string | undefined {
  return [join(dir, `${name}.gz`), join(dir, name)].find((candidate) => existsSync(candidate));
}

function locate(dir: string, name: string): string {
  const found = find(dir, name);
  if (found) return found;
  throw new Error(`Fashion-MNIST file ${name}(.gz) not found in ${dir}: ${fashionMnistHint}`);
}

/** The folder a `data_dir` setting reads ("" = TBCM_FASHION_MNIST_DIR or Debian's folder). */
export function fashionMnistDir(dataDir = ""): string {
  return dataDir || process.env.TBCM_FASHION_MNIST_DIR || FASHION_MNIST_DEFAULT_DIR;
}

/** Undefined when the splits' files are there; else which are missing where (nothing is read). */
export function missingFashionMnist(dataDir: string, splits: readonly Split[]): string | undefined {
  const dir = fashionMnistDir(dataDir);
  const gone = splits.flatMap((s) => FILES[s]).filter((name) => !find(dir, name));
  return gone.length ? `${gone.join(", ")} not found in ${dir}` : undefined;
}

/** Throws a one-line error with the install hint, before any work, when `who` needs splits that are not there. */
export function requireFashionMnist(dataDir: string, splits: readonly Split[], who: string): void {
  const gone = missingFashionMnist(dataDir, splits);
  if (gone) throw new Error(`${who} needs the Fashion-MNIST ${splits.join(" and ")} split${splits.length > 1 ? "s" : ""} (${gone}): ${fashionMnistHint}`);
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
