/**
 * Writes the small Fashion-MNIST fixture the tests use (the first 200 images of each split),
 * from the full data set: `npx tsx scripts/make-fashion-fixture.ts`.
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { loadFashionMnist } from "../src/data/fashionMnist.ts";
import { encodeIdx } from "../src/data/idx.ts";

const COUNT = 200;
const out = new URL("../test/fixtures/fashion-mnist/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
for (const [split, prefix] of [["train", "train"], ["test", "t10k"]] as const) {
  const d = loadFashionMnist(split);
  const images = d.images.slice(0, COUNT * d.height * d.width);
  writeFileSync(`${out}${prefix}-images-idx3-ubyte.gz`, gzipSync(encodeIdx([COUNT, d.height, d.width], images), { level: 9 }));
  writeFileSync(`${out}${prefix}-labels-idx1-ubyte.gz`, gzipSync(encodeIdx([COUNT], d.labels.slice(0, COUNT)), { level: 9 }));
}
console.log(`wrote ${COUNT} images per split to ${out}`);
