/** Shared pieces of the stack's training commands: run files, data batches, model cards. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ImageSet, type Split, loadFashionMnist } from "../data/fashionMnist.ts";
import { type Key, uniform } from "../numerics/random.ts";
import { writeFileAtomic } from "../numerics/safetensors.ts";

export type RunFiles = { checkpoint: string; log: string };

/** The training files of `name` in `dir` (created). */
export function runFiles(dir: string, name: string): RunFiles {
  mkdirSync(dir, { recursive: true });
  return { checkpoint: join(dir, `${name}.checkpoint.safetensors`), log: join(dir, `${name}.log.jsonl`) };
}

/** A Fashion-MNIST split from `dataDir` ("" = TBCM_FASHION_MNIST_DIR or Debian's folder). */
export function loadSplit(dataDir: string, split: Split): ImageSet {
  return loadFashionMnist(split, dataDir || undefined);
}

/** `count` random image indices of a set. */
export function drawIndices(k: Key, set: ImageSet, count: number): number[] {
  return Array.from(uniform(k, count), (u) => Math.min(set.count - 1, Math.floor(u * set.count)));
}

/** Pixels in [0, 1], [n·784], of the given images. */
export function pixels(set: ImageSet, indices: readonly number[]): Float32Array {
  const size = set.height * set.width;
  const out = new Float32Array(indices.length * size);
  indices.forEach((i, r) => {
    for (let j = 0; j < size; j++) out[r * size + j] = set.images[i * size + j] / 255;
  });
  return out;
}

/** All images of a set as pixels in [0, 1]. */
export function allPixels(set: ImageSet): Float32Array {
  return Float32Array.from(set.images, (v) => v / 255);
}

export type ModelCard = {
  name: string;
  summary: string;
  architecture: Record<string, unknown>;
  parameters: number;
  command: string;
  config: unknown;
  data: string;
  wallClockSeconds: number;
  machine: string;
  metrics: Record<string, unknown>;
  images?: string[];
  notes?: string[];
};

/** Writes `<name>.json` and `<name>.md` next to the weights. */
export function writeModelCard(dir: string, card: ModelCard): void {
  writeFileAtomic(join(dir, `${card.name}.json`), JSON.stringify(card, null, 2) + "\n");
  const md = [
    `# ${card.name}`, "", card.summary, "",
    `- Parameters: ${card.parameters.toLocaleString("en-US")}`,
    `- Training command: \`${card.command}\``,
    `- Data: ${card.data}`,
    `- Wall clock: ${(card.wallClockSeconds / 60).toFixed(1)} min on ${card.machine}`, "",
    "## Architecture", "", "```json", JSON.stringify(card.architecture, null, 2), "```", "",
    "## Metrics", "", "| metric | value |", "|---|---|",
    ...Object.entries(card.metrics).map(([k, v]) => `| ${k} | ${typeof v === "number" ? (Number.isInteger(v) ? v : Number(v.toPrecision(5))) : JSON.stringify(v)} |`), "",
    ...(card.images?.length ? ["## Samples", "", ...card.images.map((f) => `![${f}](${f})`), ""] : []),
    ...(card.notes?.length ? ["## Notes", "", ...card.notes.map((n) => `- ${n}`), ""] : []),
    "## Config", "", "```json", JSON.stringify(card.config, null, 2), "```", "",
  ].join("\n");
  writeFileSync(join(dir, `${card.name}.md`), md);
}

export const MACHINE = "2-core x86-64 CPU, Node 20, ONNX Runtime CPU (no GPU)";
