/**
 * The run configuration: one readonly, sectioned record, parsed from YAML and validated once.
 * Unknown keys, wrong types and out-of-range values are errors that name the key and the fix;
 * the returned config is fully resolved (no undefined), and it is stored with every checkpoint.
 */
import type { GuidanceSchedule } from "../method/guidance.ts";
import { readFileSync, statSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import * as D from "./defaults.ts";
import * as L from "./limits.ts";
import type { OptimizerConfig } from "../train/optim.ts";
import type { LrSchedule } from "../train/schedule.ts";

export type TeacherConfig = {
  /** `gmm`: the analytic teacher (below); `stack`: the shipped text-to-image stack (model, vae, evaluator). */
  readonly kind: "gmm" | "stack" | "onnx";
  /** `onnx`: the teacher bundle folder (teacher.json, transformer.onnx, prompt_embeddings.safetensors; src/bundle/). */
  readonly dir: string;
  readonly model: string;
  readonly vae: string;
  readonly evaluator: string;
  /** Fashion-MNIST folder for the sCM baseline's real images ("" = default). */
  readonly dataDir: string;
  readonly dim: number;
  readonly prompts: number;
  readonly components: number;
  readonly std: number;
  readonly meansSeed: number;
  /** Explicit component means [P·K][d]; drawn from N(0, I) with meansSeed when empty. */
  readonly means: readonly (readonly number[])[];
};

export type StudentConfig = {
  readonly hidden: number;
  readonly embedDim: number;
  readonly depth: number;
  readonly mlpRatio: number;
  /** A safetensors file of a flow-matching pre-trained network to start from ("" = random init). */
  readonly init: string;
};

/** Who runs the loop's compiled programs (training step, teacher pass): jax-js `jit` or ONNX Runtime. */
export const EXECUTORS = ["jax", "onnx"] as const;
export type ExecutorKind = (typeof EXECUTORS)[number];

export type TbcmConfig = {
  readonly method: "tbcm" | "scm";
  /** Runs the training step and the teacher pass (src/executor/programs.ts). */
  readonly executor: ExecutorKind;
  readonly seed: number;
  /** One prompt name per line; "" = all teacher prompts. */
  readonly promptsFile: string;
  readonly teacher: TeacherConfig;
  readonly student: StudentConfig;
  readonly route: { readonly shift: number; readonly steps: number };
  readonly guidance: readonly number[];
  /** Flow times [s_lo, s_hi] where the teacher's guidance applies (w = 1 outside); [0, 1] = everywhere, as in the spec. */
  readonly guidanceInterval: readonly [number, number];
  /** Width (flow time) of a smooth switch at the interval's edges; 0 = a step. */
  readonly guidanceRamp: number;
  /** Scaled latent of an all-black image for the black filter; empty = no filter. */
  readonly blackLatent: readonly number[];
  readonly loss: { readonly warmup: number; readonly calmStart: number; readonly calmSteps: number; readonly rFinal: number };
  readonly optim: OptimizerConfig;
  readonly schedule: LrSchedule;
  readonly train: {
    readonly steps: number;
    readonly promptsPerStep: number;
    readonly gradClip: number;
    /** Decay of the parameters' moving average (0: none); when set, the student is the average. */
    readonly ema: number;
    readonly logEvery: number;
    readonly evalEvery: number;
    readonly checkpointEvery: number;
  };
  readonly eval: {
    readonly noisesPerPrompt: number; readonly odeSteps: number; readonly projections: number; readonly curveNoises: number;
    /** Stack: generated images per FD / accuracy measurement, and their guidance scale. */
    readonly samples: number; readonly guidance: number;
    /** Stack: the middle angle of 2-step sampling (spec §6: 1.0 in the reference's validation). */
    readonly twoStepMid: number;
    /** Share of fresh noise when the student sampler re-noises (spec §6: 1; see `scmStep`). */
    readonly eta: number;
  };
  /** `tbcm train-teacher`: fitting the student network to the guided teacher (a teacher copy to start from). */
  readonly pretrain: { readonly steps: number; readonly batch: number; readonly lr: number };
};

/** A config error: one line naming the key and the fix. */
export class ConfigError extends Error {}

export type Field =
  | { type: "number"; min?: number; max?: number; exclusiveMin?: boolean; default: number }
  | { type: "int"; min?: number; max?: number; default: number }
  | { type: "string"; default: string }
  | { type: "enum"; values: readonly string[]; default: string }
  /** `maxLength` defaults to L.MAX_LIST; a matrix bounds the count of all its numbers the same way. */
  | { type: "numbers"; length?: number; maxLength?: number; default: readonly number[] }
  | { type: "matrix"; maxCount?: number; default: readonly (readonly number[])[] };

export const num = (d: number, min?: number, exclusiveMin = false, max?: number): Field => ({ type: "number", default: d, min, max, exclusiveMin });
/** An integer from `min` to `max` (default: any safe integer; every size has its bound in limits.ts). */
export const int = (d: number, min = 0, max = Number.MAX_SAFE_INTEGER): Field => ({ type: "int", default: d, min, max });
/** A string longer than any path: file names are the only strings here. */
const MAX_STRING = 4096;

/**
 * A value as it appears in an error: one line of at most 80 characters, NaN and ±Infinity as
 * YAML's `.nan` / `.inf` (JSON.stringify would print them as null).
 */
export function showValue(v: unknown): string {
  const special = (x: unknown) => (typeof x === "number" && !Number.isFinite(x) ? (Number.isNaN(x) ? ".nan" : x > 0 ? ".inf" : "-.inf") : x);
  let text: string;
  try {
    text = typeof v === "number" ? String(special(v)) : JSON.stringify(v, (_, x) => special(x)) ?? String(v);
  } catch {
    text = String(v);
  }
  text = text.replace(/"(\.nan|-?\.inf)"/g, "$1").replace(/[\r\n]+/g, " ");
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Every key, its type, range and default (snake_case, as written in YAML). */
const SCHEMA: Record<string, Field | Record<string, Field>> = {
  method: { type: "enum", values: ["tbcm", "scm"], default: "tbcm" },
  executor: { type: "enum", values: EXECUTORS, default: "onnx" },
  seed: int(0, 0, L.MAX_SEED),
  prompts_file: { type: "string", default: "" },
  teacher: {
    kind: { type: "enum", values: ["gmm", "stack", "onnx"], default: "gmm" },
    dir: { type: "string", default: "" }, // kind onnx: the teacher bundle folder (src/bundle/)
    model: { type: "string", default: "models/fmnist/teacher.safetensors" },
    vae: { type: "string", default: "models/fmnist/vae.safetensors" },
    evaluator: { type: "string", default: "models/fmnist/evaluator.safetensors" },
    data_dir: { type: "string", default: "" },
    dim: int(16, 1, L.MAX_GMM_DIM), prompts: int(10, 1, L.MAX_GMM_PROMPTS), components: int(3, 1, L.MAX_GMM_COMPONENTS), std: num(0.25, 0, true),
    means_seed: int(0, 0, L.MAX_SEED), means: { type: "matrix", default: [] },
  },
  student: {
    hidden: int(128, 1, L.MAX_WIDTH), embed_dim: int(128, 1, L.MAX_WIDTH), depth: int(3, 1, L.MAX_DEPTH), mlp_ratio: int(2, 1, L.MAX_RATIO),
    init: { type: "string", default: "" },
  },
  route: { shift: num(D.ROUTE_SHIFT, 0, true), steps: int(D.ROUTE_STEPS, 3, L.MAX_ROUTE_STEPS) },
  // each scale is a teacher pass per training pair, so a few hundred is already far past useful
  guidance: { type: "numbers", maxLength: 1000, default: D.GUIDANCE_SCALES },
  guidance_interval: { type: "numbers", maxLength: 2, default: [0, 1] },
  guidance_ramp: num(0, 0),
  black_latent: { type: "numbers", default: [] },
  loss: {
    warmup: int(D.TANGENT_WARMUP, 0, L.MAX_STEPS), calm_start: int(D.CALM_START, 0, L.MAX_STEPS), calm_steps: int(D.CALM_STEPS, 1, L.MAX_STEPS),
    r_final: num(D.R_FINAL, 0, false, 1),
  },
  optim: {
    kind: { type: "enum", values: ["adamw", "came"], default: "adamw" },
    lr: num(3e-5, 0, true), betas: { type: "numbers", maxLength: 3, default: [] }, eps: { type: "numbers", maxLength: 2, default: [] },
    weight_decay: num(0, 0), clip_threshold: num(D.CAME_CLIP_THRESHOLD, 0, true),
    schedule: { type: "enum", values: ["constant", "cosine"], default: "constant" }, warmup_steps: int(0, 0, L.MAX_STEPS),
  },
  train: {
    steps: int(12000, 1, L.MAX_STEPS), prompts_per_step: int(8, 1, L.MAX_PROMPTS_PER_STEP), grad_clip: num(D.GRAD_CLIP, 0, true), ema: num(0, 0, false, 0.9999),
    log_every: int(10, 1, L.MAX_STEPS), eval_every: int(1000, 1, L.MAX_STEPS), checkpoint_every: int(1000, 1, L.MAX_STEPS),
  },
  eval: {
    noises_per_prompt: int(256, 2, L.MAX_EVAL_SAMPLES), ode_steps: int(128, 4, L.MAX_ODE_STEPS), projections: int(64, 1, L.MAX_PROJECTIONS),
    curve_noises: int(32, 1, L.MAX_CURVE_NOISES), samples: int(1000, 2, L.MAX_EVAL_SAMPLES), guidance: num(4.5, 0), two_step_mid: num(D.TWO_STEP_MID, 0, true, Math.PI / 2),
    eta: num(D.RENOISE_ETA, 0, false, 1),
  },
  pretrain: { steps: int(4000, 1, L.MAX_STEPS), batch: int(256, 1, L.MAX_BATCH), lr: num(1e-3, 0, true) },
};

function checkField(key: string, f: Field, v: unknown): unknown {
  const fail = (what: string): never => {
    throw new ConfigError(`config key "${key}": expected ${what}, got ${showValue(v)}`);
  };
  switch (f.type) {
    case "number": {
      if (typeof v !== "number" || !Number.isFinite(v)) return fail("a number");
      const lo = f.min !== undefined && (f.exclusiveMin ? v <= f.min : v < f.min);
      if (lo || (f.max !== undefined && v > f.max)) {
        return fail(`a number ${f.exclusiveMin ? ">" : "≥"} ${f.min}${f.max !== undefined ? ` and ≤ ${f.max}` : ""}`);
      }
      return v;
    }
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v) || v < (f.min ?? 0)) return fail(`an integer ≥ ${f.min ?? 0}`);
      if (v > (f.max ?? Number.MAX_SAFE_INTEGER)) return fail(`an integer ≤ ${f.max ?? Number.MAX_SAFE_INTEGER} (the bound this key has, src/config/limits.ts)`);
      return v;
    case "string":
      if (typeof v === "string" && v.length > MAX_STRING) return fail(`a string of at most ${MAX_STRING} characters`);
      return typeof v === "string" ? v : fail("a string");
    case "enum":
      return typeof v === "string" && f.values.includes(v) ? v : fail(`one of ${f.values.join(", ")}`);
    case "numbers": {
      const most = f.maxLength ?? L.MAX_LIST;
      if (Array.isArray(v) && v.length > most) return fail(`a list of at most ${most} numbers (it has ${v.length})`);
      if (!Array.isArray(v) || !v.every((x) => typeof x === "number" && Number.isFinite(x))) return fail("a list of finite numbers");
      return v;
    }
    case "matrix": {
      const most = f.maxCount ?? L.MAX_LIST;
      if (!Array.isArray(v) || !v.every((r) => Array.isArray(r))) return fail("a list of lists of finite numbers");
      const count = (v as unknown[][]).reduce((n, r) => n + r.length, 0);
      if (count > most) return fail(`lists of at most ${most} numbers in all (they have ${count})`);
      if (!(v as unknown[][]).every((r) => r.every((x) => typeof x === "number" && Number.isFinite(x)))) return fail("a list of lists of finite numbers");
      return v;
    }
  }
}

const isField = (x: Field | Record<string, Field>): x is Field => typeof (x as Field).type === "string";
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export function resolve(raw: Record<string, unknown>, schema: Record<string, Field | Record<string, Field>>, prefix: string): Record<string, unknown> {
  // own keys only: "__proto__", "constructor", "toString" … are unknown keys, not inherited members
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(schema, k)) {
      throw new ConfigError(`unknown config key "${prefix}${k}" (allowed in ${prefix ? `"${prefix.slice(0, -1)}"` : "the top level"}: ${Object.keys(schema).join(", ")})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) {
    const v = Object.hasOwn(raw, k) ? raw[k] : undefined;
    if (isField(f)) out[camel(k)] = v === undefined || v === null ? f.default : checkField(prefix + k, f, v);
    else {
      if (v !== undefined && v !== null && (typeof v !== "object" || Array.isArray(v))) {
        throw new ConfigError(`config key "${prefix}${k}": expected a section (key: value lines), got ${showValue(v)}`);
      }
      out[camel(k)] = resolve((v ?? {}) as Record<string, unknown>, f, `${prefix}${k}.`);
    }
  }
  return out;
}

/** Validates a parsed YAML/JSON object and returns the resolved config. */
export function parseConfig(raw: unknown): TbcmConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("config must be a mapping of sections (key: value)");
  const c = resolve(raw as Record<string, unknown>, SCHEMA, "") as Record<string, any>;
  const o = c.optim;
  c.schedule = { kind: o.schedule, warmup: o.warmupSteps };
  if (o.kind === "adamw") {
    const betas = o.betas.length ? o.betas : [0.9, 0.999];
    if (betas.length !== 2) throw new ConfigError(`config key "optim.betas": AdamW takes 2 betas, got ${betas.length}`);
    c.optim = { kind: "adamw", lr: o.lr, betas, eps: o.eps.length ? o.eps[0] : 1e-8, weightDecay: o.weightDecay };
  } else {
    const betas = o.betas.length ? o.betas : D.CAME_BETAS;
    const eps = o.eps.length ? o.eps : D.CAME_EPS;
    if (betas.length !== 3) throw new ConfigError(`config key "optim.betas": CAME takes 3 betas, got ${betas.length}`);
    if (eps.length !== 2) throw new ConfigError(`config key "optim.eps": CAME takes 2 eps values, got ${eps.length}`);
    c.optim = { kind: "came", lr: o.lr, betas, eps, weightDecay: o.weightDecay, clipThreshold: o.clipThreshold };
  }
  if (c.guidance.length === 0) throw new ConfigError(`config key "guidance": give at least one guidance scale, e.g. [4, 4.5, 5]`);
  checkGuidanceInterval("guidance_interval", c.guidanceInterval);
  if (c.teacher.kind === "gmm" && (c.guidanceInterval[0] > 0 || c.guidanceInterval[1] < 1)) {
    throw new ConfigError(`config key "guidance_interval": the analytic gmm teacher guides everywhere; remove the key or use teacher.kind: stack`);
  }
  const t = c.teacher;
  if (t.prompts * t.components * t.dim > L.MAX_GMM_MEANS) {
    throw new ConfigError(`config key "teacher.prompts": prompts × components × dim = ${t.prompts}·${t.components}·${t.dim} means exceed ${L.MAX_GMM_MEANS} numbers`);
  }
  if (t.means.length && (t.means.length !== t.prompts * t.components || t.means.some((m: number[]) => m.length !== t.dim))) {
    throw new ConfigError(`config key "teacher.means": expected ${t.prompts}·${t.components} rows of ${t.dim} numbers (prompts × components × dim)`);
  }
  if (c.blackLatent.length && c.blackLatent.length !== t.dim) {
    throw new ConfigError(`config key "black_latent": expected ${t.dim} numbers (the latent dimension), got ${c.blackLatent.length}`);
  }
  return c as TbcmConfig;
}

function accepts(f: Field): string {
  switch (f.type) {
    case "number": return `number ${f.exclusiveMin ? ">" : "≥"} ${f.min ?? "-∞"}${f.max !== undefined ? `, ≤ ${f.max}` : ""}`;
    case "int": return `integer ≥ ${f.min ?? 0}${f.max !== undefined && f.max !== Number.MAX_SAFE_INTEGER ? `, ≤ ${f.max}` : ""}`;
    case "string": return "string";
    case "enum": return f.values.join(" | ");
    case "numbers": return `list of ≤ ${f.maxLength ?? L.MAX_LIST} numbers`;
    case "matrix": return `list of lists of ≤ ${f.maxCount ?? L.MAX_LIST} numbers in all`;
  }
}

/**
 * Every key of a distill config as YAML: the value `raw` gives (validated) or the default, with
 * what the key accepts as a comment — `tbcm config [--config file]`.
 */
export function describeConfig(raw: unknown = {}): string {
  parseConfig(raw); // the same validation as a run
  const given = (raw ?? {}) as Record<string, Record<string, unknown> | unknown>;
  const line = (indent: string, k: string, f: Field, v: unknown) => {
    const yamlValue = (x: unknown): string => (globalThis.Array.isArray(x) ? `[${x.map(yamlValue).join(", ")}]` : JSON.stringify(x));
    const text = `${indent}${k}: ${yamlValue(v ?? f.default)}`;
    return `${text.padEnd(48)} # ${accepts(f)}${v === undefined || v === null ? "" : " (set)"}`;
  };
  const out: string[] = [];
  for (const [k, f] of Object.entries(SCHEMA)) {
    if (isField(f)) out.push(line("", k, f, given[k]));
    else {
      out.push(`${k}:`);
      const section = (given[k] ?? {}) as Record<string, unknown>;
      for (const [kk, ff] of Object.entries(f)) out.push(line("  ", kk, ff, section[kk]));
    }
  }
  return out.join("\n") + "\n";
}

/** The teacher's guidance schedule of a config. */
export function guidanceSchedule(c: TbcmConfig): GuidanceSchedule {
  return { interval: c.guidanceInterval, ramp: c.guidanceRamp };
}

/** A guidance interval is two flow times 0 ≤ s_lo < s_hi ≤ 1. */
export function isGuidanceInterval(v: readonly number[]): boolean {
  return v.length === 2 && v[0] >= 0 && v[0] < v[1] && v[1] <= 1;
}

function checkGuidanceInterval(key: string, v: readonly number[]): void {
  if (!isGuidanceInterval(v)) {
    throw new ConfigError(`config key "${key}": expected two flow times 0 ≤ s_lo < s_hi ≤ 1 (s = 1 is pure noise), e.g. [0, 0.6]; got ${JSON.stringify(v)}`);
  }
}

/** Reads and parses a YAML file (errors name the file and the fix). */
export function readYaml(path: string): unknown {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new ConfigError(`cannot read config file "${path}": check the path`);
  }
  // before reading: a huge file is refused without holding it (and what the parser would build from it)
  if (size > L.MAX_CONFIG_BYTES) throw new ConfigError(`config file "${path}" has ${size} bytes; a config is at most ${L.MAX_CONFIG_BYTES} bytes`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new ConfigError(`cannot read config file "${path}": check the path`);
  }
  let raw: unknown;
  try {
    // maxAliasCount bounds alias expansion ("billion laughs"); a deep nesting is a parse error, caught here
    raw = parseYaml(text, { maxAliasCount: L.MAX_YAML_ALIASES });
  } catch (e) {
    const msg = String((e as Error)?.message ?? e).split("\n")[0].replace(/:\s*$/, "").slice(0, 200);
    throw new ConfigError(`config file "${path}" is not valid YAML: ${msg}`);
  }
  if (raw === null || raw === undefined) throw new ConfigError(`config file "${path}" is empty (write at least one key, e.g. "method: tbcm"; \`tbcm config\` lists them)`);
  return raw;
}

/** Reads, parses and validates a YAML config file. */
export function loadConfig(path: string): TbcmConfig {
  return parseConfig(readYaml(path));
}

/** The resolved config a run directory holds (config.json, as `tbcm distill` wrote it). */
export function configFromRun(raw: unknown, path: string): TbcmConfig {
  const c = raw as TbcmConfig;
  if (typeof raw !== "object" || raw === null || typeof c.teacher !== "object" || !["gmm", "stack", "onnx"].includes(c.teacher?.kind)) {
    throw new ConfigError(`"${path}" is not the config of a tbcm run`);
  }
  return c;
}
