/**
 * A VAE decoder for imperfect latents (issue #13, bench/RESULTS.md §21, §26): the shipped decoder
 * renders each latent token as its own 4×4 patch and was trained on near-exact posterior latents,
 * so the student's token-to-token independent latent error shows as patch blotches. This
 * fine-tunes the decoder alone (encoder frozen, so the teacher's latent space is unchanged) to
 * reconstruct training images from posterior means plus white Gaussian noise of a per-image
 * standard deviation u·σ_max (u ~ U(0, 1), σ_max in the scaled, unit-variance latent units), then
 * prints test PSNR at several noise levels and writes a VAE file with the same metadata. Evaluate a
 * run with it by pointing a copy of its config.json's teacher.vae at the file
 * (`bench/snapshot-curve.ts`, `bench/patch-artefacts.ts`). Needs the Fashion-MNIST data set.
 *
 *   npx tsx bench/noised-decoder.ts OUT.safetensors [σ_max 0.5] [steps 1500] [lr 2e-4]
 *   (steps 0: the shipped decoder's PSNR at each noise level)
 */
import { tree, numpy as np } from "@jax-js/jax";
import { loadVae } from "../src/stack/load.ts";
import { type VaeParams, vaeEncode, vaeDecode, latentDim } from "../src/models/vae.ts";
import { fit } from "../src/train/fit.ts";
import { saveParams } from "../src/numerics/params.ts";
import { loadSafetensors } from "../src/numerics/safetensors.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { loadSplit, drawIndices, pixels, allPixels } from "../src/stack/common.ts";
import { psnr } from "../src/stack/vae.ts";
import { key, foldIn, normal, uniform } from "../src/numerics/random.ts";
import { rmSync } from "node:fs";

const [out, sMax = "0.5", stepsS = "1500", lrS = "2e-4"] = process.argv.slice(2);
const sigmaMax = Number(sMax), steps = Number(stepsS), lr = Number(lrS);
const path = "models/fmnist/vae.safetensors";
const vae = loadVae(path);
const c = vae.config;
const d = latentDim(c);
const size = 784;
const train = loadSplit("", "train");
const test = loadSplit("", "test");
const enc = inference("onnx", vae.params, (p, x) => vaeEncode(p, c, x)[0], "ft_encode");
const trainPix = allPixels(train);
const [mu] = await inChunks(enc, [{ data: trainPix, shape: [train.count, size] }], train.count, 500);
const testPix = allPixels(test);
const [muTest] = await inChunks(enc, [{ data: testPix, shape: [test.count, size] }], test.count, 500);
await enc.dispose();
const k0 = foldIn(key(7), 3); // the batches and noises of step s depend on s only
const B = 64;
type D = { decoder: VaeParams["decoder"] };
const result = await fit<D>({
  name: "decoder",
  loss: (p, [images, z]) => {
    const recon = vaeDecode(p as unknown as VaeParams, c, z); // reads the decoder only
    const sq = np.square(recon.sub(images));
    return [np.mean(np.sum(sq.ref, 1)), [np.mean(sq)]];
  },
  statNames: ["mse"], batchNames: ["images", "z"],
  batch: (s) => {
    const k = foldIn(k0, s);
    const idx = drawIndices(foldIn(k, 1), train, B);
    const z = new Float32Array(B * d);
    const eps = normal(foldIn(k, 2), B * d), u = uniform(foldIn(k, 3), B);
    idx.forEach((i, r) => {
      const sig = (sigmaMax * u[r]) / vae.scale;
      for (let j = 0; j < d; j++) z[r * d + j] = mu.data[i * d + j] + sig * eps[r * d + j];
    });
    return [{ data: pixels(train, idx), shape: [B, size] }, { data: z, shape: [B, d] }];
  },
  steps, lr, schedule: { kind: "cosine", warmup: 50 }, weightDecay: 0, gradClip: 1000, emaDecay: 0.999, executor: "onnx",
  logEvery: 100, checkpointEvery: 100000, files: { checkpoint: `${out}.checkpoint`, log: `${out}.log.jsonl` }, config: JSON.stringify({ sigmaMax, steps, lr }),
  say: (l) => console.log(l),
}, { decoder: vae.params.decoder } as D);
const params: VaeParams = { encoder: vae.params.encoder, decoder: result.params.decoder };
const dec = inference("onnx", params, (p, z) => vaeDecode(p, c, z), "ft_decode");
for (const s of [0, 0.2, 0.35, 0.5]) {
  const eps = normal(key(99), muTest.data.length);
  const z = muTest.data.map((v, i) => v + (s / vae.scale) * eps[i]);
  const [r] = await inChunks(dec, [{ data: z, shape: [test.count, d] }], test.count, 500);
  console.log(`test PSNR at noise ${s}: ${psnr(testPix, r.data, size).toFixed(2)} dB`);
}
await dec.dispose();
rmSync(`${out}.checkpoint`, { force: true });
const { metadata } = loadSafetensors(path);
saveParams(out, params, { ...metadata, decoder_noise: String(sigmaMax) });
tree.dispose(params);
