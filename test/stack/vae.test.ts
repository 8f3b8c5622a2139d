import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { tree } from "@jax-js/jax";
import { loadVae } from "../../src/stack/load.ts";
import { loadFashionMnist } from "../../src/data/fashionMnist.ts";
import { inference } from "../../src/executor/inference.ts";
import { vaeEncode, vaeDecode, initVae, type VaeParams } from "../../src/models/vae.ts";
import { psnr, vaeLoss } from "../../src/stack/vae.ts";
import { fit, type FitSpec } from "../../src/train/fit.ts";
import { loadSafetensors } from "../../src/numerics/safetensors.ts";
import { namedLeaves } from "../../src/numerics/tree.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";
import { tempDir } from "../tempDir.ts";

const fixture = new URL("../fixtures/fashion-mnist/", import.meta.url).pathname;

test("shipped VAE: reproduces its recorded reconstructions of the fixture (PSNR 26.90 dB, pixel values)", async () => {
  const v = loadVae("models/fmnist/vae.safetensors");
  assert.equal(v.config.latentChannels * (28 / v.config.patch) ** 2, 196);
  assert.ok(v.scale > 0.5 && v.scale < 2, `scale ${v.scale}`);
  assert.equal(v.blackLatent.length, 196);
  const images = loadFashionMnist("test", fixture);
  const px = Float32Array.from(images.images, (x) => x / 255);
  const ae = inference("onnx", v.params, (p, x) => vaeDecode(p, v.config, vaeEncode(p, v.config, x)[0]));
  const [r] = await ae.run([{ data: px, shape: [images.count, 784] }]);
  await ae.dispose();
  tree.dispose(v.params);
  // recorded with this file (onnx and jax executors agree to 1e-6)
  assert.ok(Math.abs(psnr(px, r.data, 784) - 26.8969) < 0.01);
  assert.ok(Math.abs(r.data[14 * 28 + 14] - 0.416263) < 1e-4);
  assert.ok(Math.abs(r.data[784 + 400] - 0.403859) < 1e-4);
});

/** A tiny VAE fit on the fixture, run by `fit`. */
function tinySpec(dir: string, steps: number, extra: Partial<FitSpec<VaeParams>> = {}): FitSpec<VaeParams> {
  const c = { imageSize: 28, patch: 4, latentChannels: 4, width: 32, heads: 2, encoderDepth: 1, decoderDepth: 1 };
  const set = loadFashionMnist("train", fixture);
  return {
    name: "tiny-vae", loss: (p, [x, n]) => vaeLoss(p, c, 1e-3, x, n), statNames: ["mse", "kl"], batchNames: ["images", "noise"],
    batch: (s) => {
      const idx = Array.from({ length: 16 }, (_, i) => (s * 16 + i) % set.count);
      const x = new Float32Array(16 * 784);
      idx.forEach((j, r) => { for (let q = 0; q < 784; q++) x[r * 784 + q] = set.images[j * 784 + q] / 255; });
      return [{ data: x, shape: [16, 784] }, { data: normal(foldIn(key(5), s), 16 * 196), shape: [16, 196] }];
    },
    steps, lr: 3e-3, schedule: { kind: "constant", warmup: 0 }, weightDecay: 0, gradClip: 1000, emaDecay: 0.9,
    executor: "onnx", logEvery: 1, checkpointEvery: 4,
    files: { checkpoint: join(dir, "ck.safetensors"), log: join(dir, "log.jsonl") },
    config: JSON.stringify({ test: "tiny" }), ...extra,
  };
}

test("fit: a few VAE steps on the fixture lower the loss; a stopped and resumed fit ends exactly where an uninterrupted one does", async () => {
  const c = { imageSize: 28, patch: 4, latentChannels: 4, width: 32, heads: 2, encoderDepth: 1, decoderDepth: 1 };
  const a = tempDir("tbcm-fit-a-"), b = tempDir("tbcm-fit-b-");
  const losses: number[] = [];
  const whole = await fit(tinySpec(a, 12, { say: () => {} }), initVae(key(1), c));
  const log = (await import("node:fs")).readFileSync(join(a, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  for (const r of log) losses.push(r.loss);
  assert.ok(losses[11] < 0.6 * losses[0], `loss ${losses[0]} → ${losses[11]}`);
  let calls = 0;
  const first = await fit(tinySpec(b, 12, { stopRequested: () => ++calls === 6 }), initVae(key(1), c));
  assert.equal(first.interrupted, true);
  tree.dispose(first.params);
  const resumed = await fit(tinySpec(b, 12, { resume: true }), initVae(key(1), c));
  // the parameter average lives in the one atomic checkpoint and resumes exactly
  const ea = loadSafetensors(join(a, "ck.safetensors")).tensors, eb = loadSafetensors(join(b, "ck.safetensors")).tensors;
  const averaged = [...ea.keys()].filter((n) => n.startsWith("ema."));
  assert.ok(averaged.length > 0 && averaged.length === [...ea.keys()].filter((n) => n.startsWith("params.")).length);
  for (const [name, t] of ea) assert.deepEqual(Array.from(eb.get(name)!.data), Array.from(t.data), name);
  // and it is what fit returns (emaDecay > 0), not the last parameters
  for (const [name, x] of namedLeaves(whole.params)) {
    assert.deepEqual(Array.from(x.ref.dataSync() as Float32Array), Array.from(ea.get(`ema.${name}`)!.data), name);
    assert.notDeepEqual(Array.from(x.ref.dataSync() as Float32Array), Array.from(ea.get(`params.${name}`)!.data), name);
  }
  await assert.rejects(fit(tinySpec(b, 12, { resume: true, config: JSON.stringify({ test: "other" }) }), initVae(key(1), c)), /another config/);
  await assert.rejects(fit(tinySpec(b, 12), initVae(key(1), c)), /--resume/);
  tree.dispose([whole.params, resumed.params]);
});
