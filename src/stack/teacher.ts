/**
 * `tbcm train-teacher` for the default stack: the text encoder and the Sana-style DiT, trained
 * jointly by flow matching on VAE latents of Fashion-MNIST (spec §2): `x_s = (1−s)·z + s·ε`,
 * target `v = ε − z`, logit-normal s (s = sigmoid(n), n ~ N(0, 1)), captions drawn from the
 * training templates, 10% replaced by the empty prompt (for classifier-free guidance) and words
 * dropped to <unk> at `text.word_dropout` (so unseen words in a prompt are harmless).
 * Afterwards: sample grids per class and the evaluation at 4/8/16/32 steps go into the card.
 */
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { ConfigError, executorOf } from "../config/schema.ts";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { StackConfig } from "../config/stack.ts";
import { key, foldIn, normal, uniform } from "../numerics/random.ts";
import { parameterCount, type Tree } from "../numerics/tree.ts";
import { type TextEncoderConfig, encodeText, tokenRows } from "../models/textEncoder.ts";
import { type DitConfig, ditFlow } from "../models/dit.ts";
import { buildTokenizer, type Tokenizer, UNKNOWN } from "../data/tokenizer.ts";
import { captionSet, TRAIN_TEMPLATES } from "../data/captions.ts";
import { fit } from "../train/fit.ts";
import { saveParams } from "../numerics/params.ts";
import { inference, inChunks } from "../executor/inference.ts";
import { loadVae } from "./load.ts";
import { type TeacherParams, initTeacher } from "./init.ts";
import { requireFashionMnist } from "../data/fashionMnist.ts";
import { runFiles, loadSplit, allPixels, writeModelCard, MACHINE, type ModelCard } from "./common.ts";
import { vaeEncode } from "../models/vae.ts";

export const TRAIN_CAPTIONS = captionSet(TRAIN_TEMPLATES);

export function textConfig(cfg: StackConfig, tok: Tokenizer): TextEncoderConfig {
  const t = cfg.text;
  return { vocab: tok.vocab.length, maxWords: t.maxWords, width: t.width, heads: t.heads, depth: t.depth };
}

export function ditConfig(cfg: StackConfig): DitConfig {
  const t = cfg.teacher;
  return {
    side: 28 / cfg.vae.patch, channels: cfg.vae.latentChannels, width: t.width, depth: t.depth, heads: t.heads,
    textWidth: cfg.text.width, attention: t.attention, ffRatio: t.ffRatio,
  };
}

/** The tokenizer of the default stack: the words of every training caption. */
export function stackTokenizer(): Tokenizer {
  return buildTokenizer(TRAIN_CAPTIONS.map((c) => c.caption));
}

/** Flow-matching loss of the joint model on a batch: mean squared error of the velocity. */
export function flowMatchingLoss(p: TeacherParams, text: TextEncoderConfig, dit: DitConfig, z: Array, eps: Array, s: Array, oneHot: Array, mask: Array): Array {
  const cond = encodeText(p.text, text, oneHot, mask);
  const xs = z.ref.mul(np.subtract(1, s.ref)).add(eps.ref.mul(s.ref));
  const [v, logvar] = ditFlow(p.dit, dit, xs, s, cond);
  logvar.dispose();
  return np.mean(np.square(v.sub(eps.sub(z))));
}

/** Scaled VAE latents (posterior means) of all training images. */
async function encodeTrainingSet(cfg: StackConfig, vaePath: string, say: (l: string) => void) {
  const vae = loadVae(vaePath);
  const train = loadSplit(cfg.dataDir, "train");
  say(`teacher: encoding ${train.count} training images with the VAE…`);
  const enc = inference(executorOf(cfg), vae.params, (p, x) => vaeEncode(p, vae.config, x)[0].mul(vae.scale), "vae_encode");
  const [latents] = await inChunks(enc, [{ data: allPixels(train), shape: [train.count, 784] }], train.count, 1000);
  await enc.dispose();
  tree.dispose(vae.params);
  return { latents: latents.data, labels: train.labels, count: train.count, dim: latents.shape[1] };
}

export async function trainTeacher(cfg: StackConfig, opts: { resume?: boolean; say?: (l: string) => void; stopRequested?: () => boolean; command?: string } = {}) {
  const say = opts.say ?? (() => {});
  const vaePath = join(cfg.modelsDir, "vae.safetensors");
  if (!existsSync(vaePath)) throw new Error(`the teacher trains on VAE latents and "${vaePath}" is missing: run "tbcm train-vae --config …" first`);
  requireFashionMnist(cfg.dataDir, ["train"], "tbcm train-teacher");
  const tok = stackTokenizer();
  const tc = textConfig(cfg, tok);
  const dc = ditConfig(cfg);
  const t = cfg.teacher;
  const data = await encodeTrainingSet(cfg, vaePath, say);
  const d = data.dim;
  const byClass = TRAIN_CAPTIONS.reduce<string[][]>((acc, c) => { (acc[c.label] ??= []).push(c.caption); return acc; }, []);
  const runKey = foldIn(key(cfg.seed), 12);
  const { text, dit } = initTeacher(foldIn(runKey, 1), tc, dc);
  const result = await fit<TeacherParams>({
    name: "teacher",
    loss: (p, [z, eps, s, oneHot, mask]) => [flowMatchingLoss(p, tc, dc, z, eps, s, oneHot, mask), []],
    statNames: [], batchNames: ["z", "eps", "s", "one_hot", "mask"],
    batch: (step) => {
      const k = foldIn(foldIn(runKey, 2), step);
      const B = t.batch;
      const idx = globalThis.Array.from(uniform(foldIn(k, 1), B), (u) => Math.min(data.count - 1, Math.floor(u * data.count)));
      const z = new Float32Array(B * d);
      idx.forEach((i, r) => z.set(data.latents.subarray(i * d, (i + 1) * d), r * d));
      const pick = uniform(foldIn(k, 2), B), drop = uniform(foldIn(k, 3), B);
      const prompts = idx.map((i, r) => drop[r] < t.captionDropout ? "" : byClass[data.labels[i]][Math.floor(pick[r] * byClass[data.labels[i]].length)]);
      const rows = tokenRows(tok, prompts, tc);
      // word dropout: a word becomes <unk> (its one-hot row moves to the unknown id)
      const wd = uniform(foldIn(k, 4), B * tc.maxWords);
      const V = tc.vocab;
      for (let j = 0; j < B * tc.maxWords; j++) {
        if (wd[j] >= cfg.text.wordDropout) continue;
        const row = rows.oneHot.subarray(j * V, (j + 1) * V);
        if (row.some((x) => x === 1)) { row.fill(0); row[UNKNOWN] = 1; }
      }
      const s = normal(foldIn(k, 5), B).map((n) => 1 / (1 + Math.exp(-n)));
      return [
        { data: z, shape: [B, d] }, { data: normal(foldIn(k, 6), B * d), shape: [B, d] }, { data: s, shape: [B, 1] },
        { data: rows.oneHot, shape: [B, tc.maxWords, V] }, { data: rows.mask, shape: [B, tc.maxWords + 1] },
      ];
    },
    steps: t.steps, lr: t.lr, schedule: { kind: "cosine", warmup: t.warmup }, weightDecay: t.weightDecay, gradClip: t.gradClip,
    emaDecay: t.ema, executor: executorOf(cfg), logEvery: t.logEvery, checkpointEvery: t.checkpointEvery,
    files: runFiles(join(cfg.modelsDir, "runs"), "teacher"), config: JSON.stringify({ teacher: t, text: cfg.text, vae: cfg.vae, seed: cfg.seed }),
    resume: opts.resume, say, stopRequested: opts.stopRequested,
  }, { text, dit });
  if (result.interrupted) { tree.dispose(result.params); return { interrupted: true }; }
  const path = join(cfg.modelsDir, "teacher.safetensors");
  saveParams(path, result.params, {
    kind: "tbcm-teacher", text_config: JSON.stringify(tc), dit_config: JSON.stringify(dc), vocab: JSON.stringify(tok.vocab),
    train_seconds: String(result.seconds),
  });
  const parameters = { text: parameterCount(result.params.text as Tree), dit: parameterCount(result.params.dit as Tree) };
  tree.dispose(result.params);
  say(`teacher: saved ${path}; evaluating…`);
  const { teacherReport } = await import("./teacherReport.ts");
  const metrics = await teacherReport(cfg, say);
  writeModelCard(cfg.modelsDir, {
    name: "teacher",
    summary: "Text encoder (word tokens → 2-layer transformer) and Sana-style DiT (adaLN-single, cross-attention to text, "
      + `${dc.attention} self-attention with QK-norm, GLU feed-forward) over 7×7×4 VAE latent tokens, trained jointly by flow matching `
      + "(logit-normal time, 10% caption dropout for CFG).",
    architecture: { text: tc, dit: dc }, parameters: parameters.text + parameters.dit,
    command: opts.command ?? "tbcm train-teacher --config configs/fmnist-stack.yaml", config: { teacher: t, text: cfg.text, seed: cfg.seed },
    data: `VAE latents of the Fashion-MNIST train split (${data.count} images) with captions from prompts templates (src/data/captions.ts)`,
    wallClockSeconds: result.seconds, machine: MACHINE,
    metrics: { ...metrics.table, text_parameters: parameters.text, dit_parameters: parameters.dit },
    images: metrics.images,
    notes: metrics.notes,
  });
  return { path, seconds: result.seconds, metrics: metrics.table, interrupted: false };
}

/**
 * Evaluates the shipped teacher again (`tbcm eval-teacher`) and rewrites its model card's metrics,
 * grids and notes; the weights, training record and parameter counts stay as they are.
 */
export async function evaluateTeacher(cfg: StackConfig, say: (line: string) => void): Promise<Record<string, number>> {
  const cardPath = join(cfg.modelsDir, "teacher.json");
  if (!existsSync(cardPath)) throw new ConfigError(`no teacher model card at ${cardPath}: train the teacher first (tbcm train-teacher --config …)`);
  const card = JSON.parse(readFileSync(cardPath, "utf8")) as ModelCard;
  const { teacherReport } = await import("./teacherReport.ts");
  const report = await teacherReport(cfg, say);
  const { text_parameters, dit_parameters } = card.metrics;
  // notes written by hand after the report's own (which come first and are replaced) are kept
  const kept = (card.notes ?? []).slice(report.notes.length);
  writeModelCard(cfg.modelsDir, { ...card, metrics: { ...report.table, text_parameters, dit_parameters }, images: report.images, notes: [...report.notes, ...kept] });
  return report.table;
}

