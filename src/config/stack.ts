/**
 * The config of the default stack (issue #3): data, VAE, text encoder + DiT teacher, evaluator.
 * One YAML file (`configs/fmnist-stack.yaml`) drives `tbcm train-vae`, `tbcm train-teacher` and
 * `tbcm train-evaluator`; each writes its safetensors under `models_dir`, where the next finds it.
 * Validated like the distillation config: unknown keys and bad values name the key and the fix.
 */
import { ConfigError, type Field, num, int, resolve, readYaml, EXECUTORS, type ExecutorKind, DEVICES, type Device } from "./schema.ts";
import * as L from "./limits.ts";
import { ATTENTION_KINDS, type AttentionKind } from "./defaults.ts";

type Training = { steps: number; batch: number; lr: number; warmup: number; weightDecay: number; gradClip: number; ema: number; logEvery: number; checkpointEvery: number };

export type StackConfig = {
  kind: "stack";
  seed: number;
  executor: ExecutorKind;
  /** Where ONNX Runtime runs the programs (README "GPU"). */
  device: Device;
  /** Folder of the Fashion-MNIST IDX files ("" = TBCM_FASHION_MNIST_DIR or Debian's). */
  dataDir: string;
  modelsDir: string;
  vae: { patch: number; latentChannels: number; width: number; heads: number; encoderDepth: number; decoderDepth: number; klWeight: number } & Training;
  text: { maxWords: number; width: number; heads: number; depth: number; wordDropout: number };
  teacher: { width: number; depth: number; heads: number; ffRatio: number; attention: AttentionKind; captionDropout: number } & Training;
  evaluator: { hidden: number; features: number } & Training;
};

const training = (steps: number, batch: number, lr: number, ema: number): Record<string, Field> => ({
  steps: int(steps, 1, L.MAX_STEPS), batch: int(batch, 1, L.MAX_BATCH), lr: num(lr, 0, true), warmup: int(100, 0, L.MAX_STEPS), weight_decay: num(0, 0),
  grad_clip: num(1, 0, true), ema: num(ema, 0, false, 0.99999), log_every: int(50, 1, L.MAX_STEPS), checkpoint_every: int(500, 1, L.MAX_STEPS),
});

const SCHEMA: Record<string, Field | Record<string, Field>> = {
  kind: { type: "enum", values: ["stack"], default: "stack" },
  seed: int(0, 0, L.MAX_SEED),
  executor: { type: "enum", values: EXECUTORS, default: "onnx" },
  device: { type: "enum", values: DEVICES, default: "cpu" },
  data_dir: { type: "string", default: "" },
  models_dir: { type: "string", default: "models/fmnist" },
  vae: {
    // the images are 28×28: a patch is at most 28 wide
    patch: int(4, 1, 28), latent_channels: int(4, 1, L.MAX_WIDTH), width: int(128, 1, L.MAX_WIDTH), heads: int(4, 1, L.MAX_WIDTH),
    encoder_depth: int(2, 1, L.MAX_DEPTH), decoder_depth: int(3, 1, L.MAX_DEPTH), kl_weight: num(1e-3, 0), ...training(4000, 128, 1e-3, 0.999),
  },
  // max_words: a caption is a few words (shipped: 8); attention is quadratic in it
  text: { max_words: int(8, 1, 1024), width: int(64, 1, L.MAX_WIDTH), heads: int(4, 1, L.MAX_WIDTH), depth: int(2, 1, L.MAX_DEPTH), word_dropout: num(0.1, 0, false, 1) },
  teacher: {
    width: int(128, 1, L.MAX_WIDTH), depth: int(4, 1, L.MAX_DEPTH), heads: int(4, 1, L.MAX_WIDTH), ff_ratio: int(2, 1, L.MAX_RATIO),
    attention: { type: "enum", values: ATTENTION_KINDS, default: "softmax" }, caption_dropout: num(0.1, 0, false, 1),
    ...training(6000, 128, 5e-4, 0.999),
  },
  evaluator: { hidden: int(512, 1, L.MAX_WIDTH), features: int(128, 1, L.MAX_WIDTH), ...training(3000, 256, 1e-3, 0) },
};

export function parseStackConfig(raw: unknown): StackConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("config must be a mapping of sections (key: value)");
  const c = resolve(raw as Record<string, unknown>, SCHEMA, "") as unknown as StackConfig;
  if (28 % c.vae.patch !== 0) throw new ConfigError(`config key "vae.patch": must divide 28 (e.g. 4 or 7), got ${c.vae.patch}`);
  for (const [k, s] of [["vae", c.vae], ["text", c.text], ["teacher", c.teacher]] as const) {
    if (s.width % s.heads !== 0 || (s.width / s.heads) % 1 !== 0) throw new ConfigError(`config key "${k}.heads": ${s.heads} does not divide ${k}.width ${s.width}`);
  }
  if (c.teacher.width % 4 !== 0) throw new ConfigError(`config key "teacher.width": must be a multiple of 4 (2-D position embedding), got ${c.teacher.width}`);
  return c;
}

export function loadStackConfig(path: string): StackConfig {
  return parseStackConfig(readYaml(path));
}

/** Whether a parsed YAML file is a stack config (top-level `kind: stack`). */
export function isStackConfig(raw: unknown): boolean {
  return typeof raw === "object" && raw !== null && (raw as Record<string, unknown>).kind === "stack";
}
