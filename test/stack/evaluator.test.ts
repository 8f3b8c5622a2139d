import { test } from "node:test";
import assert from "node:assert/strict";
import { Evaluator } from "../../src/eval/evaluator.ts";
import { loadFashionMnist } from "../../src/data/fashionMnist.ts";

const fixture = new URL("../fixtures/fashion-mnist/", import.meta.url).pathname;

test("shipped evaluator: recorded accuracy, features and FD on the fixture; FD of a set with itself is 0", async () => {
  const e = await Evaluator.load("models/fmnist/evaluator.safetensors");
  const testSet = loadFashionMnist("test", fixture), train = loadFashionMnist("train", fixture);
  const a = await e.statistics(Float32Array.from(testSet.images, (v) => v / 255));
  const b = await e.statistics(Float32Array.from(train.images, (v) => v / 255));
  await e.dispose();
  assert.equal(a.accuracy(testSet.labels), 0.895); // 179 of the 200 fixture test images
  assert.ok(Math.abs(a.mean[0] - 0.282325) < 1e-4 && Math.abs(a.mean[5] - 0.617643) < 1e-4);
  assert.ok(Math.abs(a.frechetDistance(b) - 27.551) < 0.01);
  assert.ok(Math.abs(a.frechetDistance(a)) < 1e-6);
});
