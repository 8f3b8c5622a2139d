/**
 * `tbcm train-vae`: the default VAE on Fashion-MNIST. Loss per image: squared error summed over
 * pixels + kl_weight · KL(q(z|x) ‖ N(0, I)) summed over latent values. Afterwards: the latent
 * scale factor (1/std of the posterior means on 5,000 training images), the scaled latent of an
 * all-black image (the black filter's z_black), and reconstruction PSNR on the test split.
 */
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { StackConfig } from "../config/stack.ts";
import { executorOf } from "../config/schema.ts";
import { key, foldIn, normal } from "../numerics/random.ts";
import { parameterCount, type Tree } from "../numerics/tree.ts";
import { type VaeConfig, type VaeParams, initVae, vaeEncode, vaeDecode, latentDim } from "../models/vae.ts";
import { fit } from "../train/fit.ts";
import { saveParams } from "../numerics/params.ts";
import { inference, inChunks } from "../executor/inference.ts";
import { requireFashionMnist } from "../data/fashionMnist.ts";
import { runFiles, loadSplit, drawIndices, pixels, allPixels, writeModelCard, MACHINE } from "./common.ts";

export function vaeConfig(cfg: StackConfig): VaeConfig {
  const v = cfg.vae;
  return { imageSize: 28, patch: v.patch, latentChannels: v.latentChannels, width: v.width, heads: v.heads, encoderDepth: v.encoderDepth, decoderDepth: v.decoderDepth };
}

/** Negative ELBO parts per image: [loss, mse per pixel, kl per image]. */
export function vaeLoss(p: VaeParams, c: VaeConfig, klWeight: number, images: Array, noise: Array): [Array, Array[]] {
  const [mean, logvar] = vaeEncode(p, c, images.ref); // uses (consumes) the encoder's arrays only
  const z = mean.ref.add(np.exp(logvar.ref.mul(0.5)).mul(noise));
  const recon = vaeDecode(p, c, z);
  const sq = np.square(recon.sub(images));
  const rec = np.mean(np.sum(sq.ref, 1));
  const kl = np.mean(np.sum(np.square(mean).add(np.exp(logvar.ref)).sub(1).sub(logvar), 1)).mul(0.5);
  return [rec.add(kl.ref.mul(klWeight)), [np.mean(sq), kl]];
}

/** Mean per-image PSNR (dB) of reconstructions in [0, 1]. */
export function psnr(images: Float32Array, recon: Float32Array, size: number): number {
  let total = 0;
  const n = images.length / size;
  for (let i = 0; i < n; i++) {
    let se = 0;
    for (let j = 0; j < size; j++) {
      const r = Math.min(1, Math.max(0, recon[i * size + j]));
      se += (r - images[i * size + j]) ** 2;
    }
    total += 10 * Math.log10(1 / Math.max(se / size, 1e-10));
  }
  return total / n;
}

export type VaeResult = { psnr: number; scale: number; blackLatent: number[]; seconds: number; path: string; interrupted: boolean };

export async function trainVae(cfg: StackConfig, opts: { resume?: boolean; say?: (l: string) => void; stopRequested?: () => boolean; command?: string } = {}): Promise<VaeResult> {
  const say = opts.say ?? (() => {});
  const c = vaeConfig(cfg);
  requireFashionMnist(cfg.dataDir, ["train", "test"], "tbcm train-vae");
  const train = loadSplit(cfg.dataDir, "train");
  const test = loadSplit(cfg.dataDir, "test");
  const v = cfg.vae;
  const runKey = foldIn(key(cfg.seed), 11);
  const d = latentDim(c);
  const init = initVae(foldIn(runKey, 1), c);
  const size = 28 * 28;
  const result = await fit<VaeParams>({
    name: "vae",
    loss: (p, [images, noise]) => vaeLoss(p, c, v.klWeight, images, noise),
    statNames: ["mse", "kl"],
    batchNames: ["images", "noise"],
    batch: (s) => {
      const k = foldIn(foldIn(runKey, 2), s);
      const idx = drawIndices(foldIn(k, 1), train, v.batch);
      return [{ data: pixels(train, idx), shape: [v.batch, size] }, { data: normal(foldIn(k, 2), v.batch * d), shape: [v.batch, d] }];
    },
    steps: v.steps, lr: v.lr, schedule: { kind: "cosine", warmup: v.warmup }, weightDecay: v.weightDecay, gradClip: v.gradClip,
    emaDecay: v.ema, executor: executorOf(cfg), logEvery: v.logEvery, checkpointEvery: v.checkpointEvery,
    files: runFiles(join(cfg.modelsDir, "runs"), "vae"), config: JSON.stringify({ vae: cfg.vae, seed: cfg.seed }),
    resume: opts.resume, say, stopRequested: opts.stopRequested,
  }, init);
  const path = join(cfg.modelsDir, "vae.safetensors");
  if (result.interrupted) {
    tree.dispose(result.params);
    return { psnr: NaN, scale: NaN, blackLatent: [], seconds: result.seconds, path, interrupted: true };
  }
  const params = result.params;
  say("vae: latent scale, black latent and test PSNR…");
  const enc = inference(executorOf(cfg), params, (p, x) => vaeEncode(p, c, x)[0], "vae_encode");
  const dec = inference(executorOf(cfg), params, (p, z) => vaeDecode(p, c, z), "vae_decode");
  const nScale = Math.min(5000, train.count);
  const [trainLatents] = await inChunks(enc, [{ data: pixels(train, drawIndices(foldIn(runKey, 3), train, nScale)), shape: [nScale, size] }], nScale, 500);
  let m = 0, m2 = 0;
  for (const x of trainLatents.data) { m += x; m2 += x * x; }
  m /= trainLatents.data.length;
  const std = Math.sqrt(m2 / trainLatents.data.length - m * m);
  const scale = 1 / std;
  const [black] = await enc.run([{ data: new Float32Array(size), shape: [1, size] }]);
  const blackLatent = globalThis.Array.from(black.data, (x) => x * scale);
  const testPixels = allPixels(test);
  const [testLatents] = await inChunks(enc, [{ data: testPixels, shape: [test.count, size] }], test.count, 500);
  const [recon] = await inChunks(dec, [testLatents], test.count, 500);
  const testPsnr = psnr(testPixels, recon.data, size);
  await enc.dispose(); await dec.dispose();
  saveParams(path, params, {
    kind: "tbcm-vae", config: JSON.stringify(c), scale: String(scale), black_latent: JSON.stringify(blackLatent), psnr_test: String(testPsnr),
  });
  writeModelCard(cfg.modelsDir, {
    name: "vae",
    summary: "Patch-token transformer VAE for 28×28 Fashion-MNIST: 4×4 patches → 49 tokens → latent 7×7×4, KL-regularised. Latents times `scale` have unit variance.",
    architecture: { ...c, latentDim: d }, parameters: parameterCount(params as Tree),
    command: opts.command ?? "tbcm train-vae --config configs/fmnist-stack.yaml", config: { vae: cfg.vae, seed: cfg.seed },
    data: `Fashion-MNIST train split (${train.count} images), PSNR on the test split (${test.count} images)`,
    wallClockSeconds: result.seconds, machine: MACHINE,
    metrics: { psnr_test_db: testPsnr, scale, latent_mean_unscaled: m, final_mse: result.last.mse, final_kl: result.last.kl, steps: v.steps },
  });
  tree.dispose(params);
  return { psnr: testPsnr, scale, blackLatent, seconds: result.seconds, path, interrupted: false };
}
