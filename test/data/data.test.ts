import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadFashionMnist } from "../../src/data/fashionMnist.ts";
import { parseIdx, encodeIdx } from "../../src/data/idx.ts";
import { captionSet, captionLabel, TRAIN_TEMPLATES, EVAL_TEMPLATES } from "../../src/data/captions.ts";
import { buildTokenizer, encode, decode, unknownWords, UNKNOWN } from "../../src/data/tokenizer.ts";
import { tempDir } from "../tempDir.ts";

const fixture = new URL("../fixtures/fashion-mnist/", import.meta.url).pathname;

test("Fashion-MNIST fixture: IDX headers, labels and pixel values of the real data set", () => {
  const raw = parseIdx(readFileSync(`${fixture}t10k-images-idx3-ubyte.gz`));
  assert.deepEqual(raw.shape, [200, 28, 28]);
  const train = loadFashionMnist("train", fixture);
  const testSet = loadFashionMnist("test", fixture);
  assert.equal(train.count, 200);
  assert.equal(testSet.height, 28);
  // First labels of each split of Fashion-MNIST (train: ankle boot, t-shirt, t-shirt, dress, …).
  assert.deepEqual(Array.from(train.labels.slice(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
  assert.deepEqual(Array.from(testSet.labels.slice(0, 10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
  const sum = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);
  assert.equal(sum(train.images.subarray(0, 784)), 76247);
  assert.equal(sum(testSet.images.subarray(0, 784)), 33456);
  assert.equal(testSet.images[14 * 28 + 14], 110);
});

test("IDX: encode/parse round trip; bad files and a missing data set are clear errors", () => {
  const data = Uint8Array.from([1, 2, 3, 4, 5, 6]);
  const back = parseIdx(encodeIdx([2, 3], data));
  assert.deepEqual(back.shape, [2, 3]);
  assert.deepEqual(Array.from(back.data), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseIdx(Uint8Array.from([1, 2, 8, 1]), "x"), /bad magic/);
  assert.throws(() => parseIdx(encodeIdx([4], data.subarray(0, 4)).subarray(0, 10), "x"), /truncated/);
  assert.throws(() => loadFashionMnist("train", "/nonexistent"), /apt-get install dataset-fashion-mnist.*TBCM_FASHION_MNIST_DIR/);
});

test("captions: every class, held-out phrasings disjoint from training, label recoverable", () => {
  const train = captionSet(TRAIN_TEMPLATES), held = captionSet(EVAL_TEMPLATES);
  assert.equal(new Set(train.map((c) => c.label)).size, 10);
  const trainText = new Set(train.map((c) => c.caption));
  assert.ok(held.every((c) => !trainText.has(c.caption)));
  for (const c of [...train, ...held]) assert.equal(captionLabel(c.caption), c.label, c.caption);
  assert.equal(captionLabel("an astronaut riding a horse"), -1);
  assert.ok(train.some((c) => c.caption === "an image of an ankle boot"));
  // The committed prompt files are these captions.
  const file = (name: string) => readFileSync(new URL(`../../prompts/${name}`, import.meta.url), "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
  assert.deepEqual(file("train.txt"), train.map((c) => c.caption));
  assert.deepEqual(file("eval.txt"), held.map((c) => c.caption));
});

test("tokenizer: round trip over all captions, padding, unknown words, length limit", () => {
  const all = [...captionSet(TRAIN_TEMPLATES), ...captionSet(EVAL_TEMPLATES)].map((c) => c.caption);
  const tok = buildTokenizer(all);
  for (const c of all) assert.equal(decode(tok, encode(tok, c, 12)), c.toLowerCase());
  const ids = encode(tok, "A photo of a sneaker", 8);
  assert.deepEqual(Array.from(ids.slice(5)), [0, 0, 0]);
  assert.equal(encode(tok, "a photo of a zeppelin", 8)[4], UNKNOWN);
  assert.deepEqual(unknownWords(tok, "a purple zeppelin"), ["purple", "zeppelin"]);
  assert.throws(() => encode(tok, "a b c d e", 4), /at most 4/);
});

test("image panels: each grid lands in its panel, image by image, with a grey gap between panels", async () => {
  const { writeImagePanels, readGrey } = await import("../../src/data/png.ts");
  const { join } = await import("node:path");
  // two panels of 2×3 images of 2×2 pixels; image i of panel p is the constant (p·6 + i + 1)/20
  const panel = (p: number) => Float32Array.from({ length: 6 * 4 }, (_, j) => (p * 6 + Math.floor(j / 4) + 1) / 20);
  const path = join(tempDir("tbcm-png-"), "panels.png");
  writeImagePanels(path, [panel(0), panel(1)], { rows: 2, cols: 3, height: 2, width: 2, pad: 1, zoom: 1 });
  const { width, height, pixels } = readGrey(readFileSync(path));
  const gridW = 3 * (2 + 1) + 1; // 10
  assert.equal(height, 2 * (2 + 1) + 1);
  assert.equal(width, 2 * gridW + 10);
  const at = (x: number, y: number) => Math.round(pixels[y * width + x] * 255);
  for (let p = 0; p < 2; p++) for (let i = 0; i < 6; i++) {
    const left = p * (gridW + 10) + 1 + (i % 3) * 3, top = 1 + Math.floor(i / 3) * 3;
    for (const [dx, dy] of [[0, 0], [1, 1]]) assert.equal(at(left + dx, top + dy), Math.round(255 * (p * 6 + i + 1) / 20), `panel ${p} image ${i}`);
  }
  assert.equal(at(gridW + 4, 3), 128); // the gap
  assert.equal(at(0, 0), 0); // the padding
});
