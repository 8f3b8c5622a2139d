/**
 * `teacher.json`, the manifest of a teacher bundle (README "Distil your own teacher"): what the
 * denoiser's inputs and output mean, the latent shape, the time convention, the prediction type,
 * the prompt-embeddings table and the optional VAE decoder. Validated like a config: an unknown
 * key, a wrong type or a missing field is one line naming it and what it accepts.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, showValue } from "../config/schema.ts";

/** The manifest's `format`. */
export const BUNDLE_FORMAT = "tbcm-teacher-bundle-1";
/**
 * What a denoiser may predict: `flow_velocity` (v = ε − x0 for x_s = (1−s)·x0 + s·ε; −v in a
 * noise-at-0 model's own time), or `x0`, the clean latent itself (x-prediction), whose velocity
 * is v = (x_s − x̂0)/s. ε-prediction is not distilled: its velocity (ε̂ − x_s)/(1 − s) is singular at
 * pure noise, where the 1-step student starts.
 */
export const PREDICTIONS = ["flow_velocity", "x0"] as const;
/** The largest teacher.json read (a manifest is a few hundred bytes; a black latent a few KB). */
const MAX_MANIFEST_BYTES = 4 << 20;

export type BundleManifest = {
  readonly format: string;
  /** Per-sample shape of the latent the denoiser takes, e.g. [C, H, W]; flat rows in the loop are its row-major order. */
  readonly latentShape: readonly number[];
  /** The VAE scaling factor the latents are already multiplied by: the decoder takes latent / factor + shift. */
  readonly latentScalingFactor: number;
  readonly latentShiftFactor: number;
  readonly transformer: {
    readonly file: string;
    /** Input names; `condition` lists the inputs that together are a prompt's condition (one table tensor each); none for an unconditional teacher. */
    /** `guidance`: the input of a guidance-distilled model's scale (Flux-dev), "" for none (the teacher is guided by CFG). */
    readonly inputs: { readonly latent: string; readonly time: string; readonly condition: readonly string[]; readonly guidance: string; readonly constant: readonly string[] };
    /** The guidance input is `guidanceInputScale · w`. */
    readonly guidanceInputScale: number;
    readonly output: string;
    /** The time input is `time_scale · s`, s ∈ [0, 1] the flow time (1 = pure noise); `time_scale · (1 − s)` when `noiseAt` is 0. */
    readonly timeScale: number;
    /**
     * The model's own time at which x is pure noise: 1 (x_s = (1−s)·x0 + s·ε: diffusers, SD3, Flux,
     * Sana) or 0 (x_t = t·x0 + (1−t)·ε: Meta's flow_matching, torchcfm), whose velocity d x/dt is then −v.
     */
    readonly noiseAt: 0 | 1;
    readonly prediction: (typeof PREDICTIONS)[number];
    /** Tensor (a node's output) where the time embedding [B, W] is formed: the student's guidance embedding is added there ("" = none; "auto" in teacher.json: found by loadBundle, which gives the name). */
    readonly timeEmbedding: string;
    /** Name prefixes of the floating initializers the student trains (empty: every one of more than one element). */
    readonly trainable: readonly string[];
  };
  readonly promptEmbeddings: { readonly file: string; readonly emptyPrompt: string };
  /** The guidance scales to distil (the student is conditioned on them when `time_embedding` is set). */
  readonly guidanceScales: readonly number[];
  /** The scale the student is distilled at without a guidance embedding, and samples with by default. */
  readonly defaultGuidance: number;
  readonly blackLatent: readonly number[];
  readonly vaeDecoder: { readonly file: string; readonly input: string; readonly output: string; readonly outputRange: readonly number[] } | null;
};

type Kind = "string" | "strings" | "names" | "inputs" | "name" | "number" | "positive" | "shape" | "numbers" | "range" | "prediction" | "format" | "endpoint";
type Spec = { kind: Kind; required: boolean; default?: unknown; what: string } | { section: Record<string, Spec>; required: boolean; what: string };

const req = (kind: Kind, what: string): Spec => ({ kind, required: true, what });
const opt = (kind: Kind, d: unknown, what: string): Spec => ({ kind, required: false, default: d, what });

const SCHEMA: Record<string, Spec> = {
  format: req("format", `"${BUNDLE_FORMAT}"`),
  latent_shape: req("shape", "the latent's per-sample shape, e.g. [4, 32, 32]"),
  latent_scaling_factor: opt("positive", 1, "the VAE scaling factor the latents are multiplied by"),
  latent_shift_factor: opt("number", 0, "the VAE shift factor subtracted before scaling"),
  transformer: {
    required: true, what: "the denoiser: file, inputs, output, time_scale, prediction",
    section: {
      file: opt("name", "transformer.onnx", "the denoiser's ONNX file in the bundle"),
      inputs: {
        required: true, what: "the denoiser's input names: latent, time, condition (and guidance, constant)",
        section: {
          latent: req("string", "the input name of the noisy latent x_s [B, ...latent_shape]"),
          time: req("string", "the input name of the time (time_scale · s) [B] or [B, 1]"),
          condition: opt("inputs", [], "the input name of the prompt condition [B, ...] (a row of the embeddings table), or a list of up to 16 distinct input names when the condition is several tensors (e.g. token embeddings and pooled embeddings); [] or left out for an unconditional teacher"),
          guidance: opt("string", "", "the input name of a guidance-distilled model's guidance scale [B] or [B, 1] (Flux-dev): tbcm guides in one pass with the scale there, not by CFG"),
          constant: opt("names", [], "a list of input names fed the same value on every call (Flux's img_ids and txt_ids), each from the table file's tensor of that name"),
        },
      },
      output: req("string", "the output name of the prediction [B, ...latent_shape]"),
      time_scale: opt("positive", 1, "the time input is time_scale · s (1 for s in [0, 1], 1000 for diffusers' timesteps)"),
      guidance_input_scale: opt("positive", 1, "the guidance input is guidance_input_scale · w (1 for Flux, which scales it inside)"),
      noise_at: opt("endpoint", 1, "the model's time of pure noise: 1 (x_s = (1−s)·x0 + s·ε, diffusers) or 0 (x_t = t·x0 + (1−t)·ε, Meta's flow_matching, torchcfm)"),
      prediction: req("prediction", PREDICTIONS.join(" | ")),
      time_embedding: opt("string", "", "the tensor (a node's output) holding the time embedding [B, W], for a guidance embedding; \"auto\" finds it in the graph"),
      trainable: opt("strings", [], "a list of initializer-name prefixes the student trains (default: every floating initializer of more than one element)"),
    },
  },
  prompt_embeddings: {
    required: false, what: "the prompt-embeddings table: file, empty_prompt",
    section: {
      file: opt("name", "prompt_embeddings.safetensors", "safetensors with tensor \"embeddings\" [P, ...] and metadata \"prompts\" (JSON list of P strings)"),
      empty_prompt: opt("string", "", "the table's entry of the empty (unconditional) prompt"),
    },
  },
  guidance_scales: opt("numbers", null, "a list of guidance scales ≥ 0, e.g. [4, 4.5, 5] (an unconditional teacher is not guided: leave it out)"),
  default_guidance: opt("number", NaN, "a guidance scale ≥ 0 (default: the middle of guidance_scales)"),
  black_latent: opt("numbers", [], "the latent of an all-black image (latent_shape's size) for the black filter"),
  vae_decoder: {
    required: false, what: "the optional decoder: file, input, output, output_range",
    section: {
      file: opt("name", "vae_decoder.onnx", "the decoder's ONNX file in the bundle"),
      input: req("string", "the decoder's input name (latent / latent_scaling_factor + latent_shift_factor)"),
      output: req("string", "the decoder's output name: images [B, C, H, W], C = 1 or 3"),
      output_range: opt("range", [-1, 1], "the pixel range of the output, e.g. [-1, 1] or [0, 1]"),
    },
  },
};

const isSection = (s: Spec): s is Extract<Spec, { section: unknown }> => "section" in s;
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function check(file: string, key: string, s: Extract<Spec, { kind: Kind }>, v: unknown): unknown {
  const fail = (): never => {
    throw new ConfigError(`${file}: key "${key}": expected ${s.what}, got ${showValue(v)}`);
  };
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  switch (s.kind) {
    case "format": return v === BUNDLE_FORMAT ? v : fail();
    case "endpoint": return v === 0 || v === 1 ? v : fail();
    case "string": return typeof v === "string" && v.length > 0 && v.length <= 4096 ? v : typeof v === "string" && !s.required && v === "" ? v : fail();
    case "strings": return Array.isArray(v) && v.length <= 100000 && v.every((x) => typeof x === "string" && x.length <= 4096) ? v : fail();
    case "names": return Array.isArray(v) && v.length <= 16 && new Set(v).size === v.length && v.every((x) => typeof x === "string" && x.length > 0 && x.length <= 4096) ? v : fail();
    case "inputs": {
      const names = typeof v === "string" ? [v] : v;
      const ok = Array.isArray(names) && names.length <= 16 && new Set(names).size === names.length
        && names.every((x) => typeof x === "string" && x.length > 0 && x.length <= 4096);
      return ok ? names : fail();
    }
    case "name": return typeof v === "string" && /^[A-Za-z0-9_.-]+$/.test(v) && v !== "." && v !== ".." ? v : fail(); // a file in the bundle, no path
    case "number": return finite(v) && v >= 0 ? v : fail();
    case "positive": return finite(v) && v > 0 ? v : fail();
    case "shape": return Array.isArray(v) && v.length >= 1 && v.length <= 8 && v.every((d) => Number.isInteger(d) && d >= 1) && v.reduce((a: number, b: number) => a * b, 1) <= 1 << 24 ? v : fail();
    case "numbers": return Array.isArray(v) && v.length <= 1 << 24 && v.every(finite) && (key !== "guidance_scales" || (v.length >= 1 && v.length <= 1000 && v.every((x) => x >= 0))) ? v : fail();
    case "range": return Array.isArray(v) && v.length === 2 && v.every(finite) && v[0] < v[1] ? v : fail();
    case "prediction": return typeof v === "string" && (PREDICTIONS as readonly string[]).includes(v) ? v
      : typeof v === "string" ? (() => { throw new ConfigError(`${file}: key "${key}": prediction "${v}" is not supported (supported: ${PREDICTIONS.join(", ")}: v = ε − x0 for x_s = (1−s)·x0 + s·ε, or the clean latent x0)`); })() : fail();
  }
}

function resolve(file: string, raw: Record<string, unknown>, schema: Record<string, Spec>, prefix: string): Record<string, unknown> {
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(schema, k)) throw new ConfigError(`${file}: unknown key "${prefix}${k}" (allowed${prefix ? ` in "${prefix.slice(0, -1)}"` : ""}: ${Object.keys(schema).join(", ")})`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(schema)) {
    const key = prefix + k;
    const v = Object.hasOwn(raw, k) ? raw[k] : undefined;
    if (v === undefined || v === null) {
      if (s.required) throw new ConfigError(`${file}: missing key "${key}" (${s.what})`);
      out[camel(k)] = isSection(s) ? null : s.default;
      continue;
    }
    if (isSection(s)) {
      if (typeof v !== "object" || Array.isArray(v)) throw new ConfigError(`${file}: key "${key}": expected an object (${s.what}), got ${showValue(v)}`);
      out[camel(k)] = resolve(file, v as Record<string, unknown>, s.section, `${key}.`);
    } else out[camel(k)] = check(file, key, s, v);
  }
  return out;
}

/** Reads and validates `<dir>/teacher.json`. */
export function readManifest(dir: string): BundleManifest {
  const file = join(dir, "teacher.json");
  let text: string;
  try {
    if (statSync(file).size > MAX_MANIFEST_BYTES) throw new ConfigError(`${file} is larger than ${MAX_MANIFEST_BYTES} bytes: not a teacher manifest`);
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`no teacher bundle at "${dir}": cannot read ${file} (teacher.dir names a folder with teacher.json, transformer.onnx, prompt_embeddings.safetensors)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file} is not valid JSON: ${String((e as Error).message).split("\n")[0].slice(0, 200)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: expected a JSON object of keys (${Object.keys(SCHEMA).join(", ")})`);
  return parseManifest(raw as Record<string, unknown>, file);
}

/** Whether the teacher takes no condition: one "prompt" (the empty one), no guidance. */
export function isUnconditional(m: BundleManifest): boolean {
  return m.transformer.inputs.condition.length === 0;
}

/** Validates a parsed manifest (`file` names it in errors). */
export function parseManifest(raw: Record<string, unknown>, file = "teacher.json"): BundleManifest {
  const m = resolve(file, raw, SCHEMA, "") as Record<string, any>;
  m.promptEmbeddings ??= { file: "prompt_embeddings.safetensors", emptyPrompt: "" };
  // an unconditional teacher (no condition input) has one "prompt", the empty one, and nothing to guide: scale 1
  if (m.transformer.inputs.condition.length === 0) {
    if (m.guidanceScales !== null && !(m.guidanceScales.length === 1 && m.guidanceScales[0] === 1)) throw new ConfigError(`${file}: key "guidance_scales": an unconditional teacher (transformer.inputs.condition names no input) is not guided; leave guidance_scales out`);
    if (m.transformer.inputs.guidance) throw new ConfigError(`${file}: key "transformer.inputs.guidance": an unconditional teacher (transformer.inputs.condition names no input) takes no guidance scale`);
    if (m.promptEmbeddings.emptyPrompt !== "") throw new ConfigError(`${file}: key "prompt_embeddings.empty_prompt": an unconditional teacher has no prompts; leave it out`);
    m.guidanceScales = [1];
    if (!Number.isNaN(m.defaultGuidance) && m.defaultGuidance !== 1) throw new ConfigError(`${file}: key "default_guidance": an unconditional teacher is not guided; leave it out`);
  } else if (m.guidanceScales === null) throw new ConfigError(`${file}: missing key "guidance_scales" (a list of guidance scales ≥ 0, e.g. [4, 4.5, 5])`);
  const scales = m.guidanceScales as number[];
  if (Number.isNaN(m.defaultGuidance)) m.defaultGuidance = [...scales].sort((a, b) => a - b)[Math.floor((scales.length - 1) / 2)];
  const d = (m.latentShape as number[]).reduce((a, b) => a * b, 1);
  if (m.blackLatent.length && m.blackLatent.length !== d) throw new ConfigError(`${file}: key "black_latent": expected ${d} numbers (latent_shape's size), got ${m.blackLatent.length}`);
  return m as BundleManifest;
}

/** The per-sample latent size. */
export function latentSize(m: BundleManifest): number {
  return m.latentShape.reduce((a, b) => a * b, 1);
}
