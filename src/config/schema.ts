/**
 * The run configuration: one readonly, sectioned record, parsed from YAML and validated once.
 * Unknown keys, wrong types and out-of-range values are errors that name the key and the fix;
 * the returned config is fully resolved (no undefined), and it is stored with every checkpoint.
 */
import { shippedPath } from "../paths.ts";
import type { GuidanceSchedule } from "../method/guidance.ts";
import { readFileSync, statSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import * as D from "./defaults.ts";
import * as L from "./limits.ts";
import type { LrSchedule } from "../train/schedule.ts";
import { ROUTE_SAMPLINGS } from "../method/route.ts";

/** Who runs the loop's compiled programs (training step, teacher pass): jax-js `jit` or ONNX Runtime. */
export const EXECUTORS = ["jax", "onnx"] as const;
export type ExecutorKind = (typeof EXECUTORS)[number];
/** Where ONNX Runtime runs the programs: its CPU, WebGPU (Dawn over Vulkan/Metal/D3D12) or CUDA execution provider. */
export const DEVICES = ["cpu", "webgpu", "cuda"] as const;
export type Device = (typeof DEVICES)[number];
/**
 * The runtime of the compiled programs and, for ONNX Runtime, its device; a bare kind is on the
 * CPU. What `inference`, `loopPrograms` and the samplers take.
 */
export type Executor = ExecutorKind | { readonly kind: ExecutorKind; readonly device: Device };

/** The kind and device of an executor. */
export function executorParts(e: Executor): { kind: ExecutorKind; device: Device } {
  const parts = typeof e === "string" ? { kind: e, device: "cpu" as const } : { kind: e.kind, device: e.device };
  checkExecutorDevice(parts.kind, parts.device, "executor");
  return parts;
}

/** The executor a config names (its `executor` and `device` keys). */
export function executorOf(c: { readonly executor: ExecutorKind; readonly device: Device }): Executor {
  checkExecutorDevice(c.executor, c.device, "executor");
  return c.device === "cpu" ? c.executor : { kind: c.executor, device: c.device };
}

/** A one-line error unless `kind` can run on `device` (jax-js runs on the CPU only here). */
export function checkExecutorDevice(kind: ExecutorKind, device: Device, key = "device"): void {
  if (kind === "jax" && device !== "cpu") {
    throw new ConfigError(`${key === "device" ? 'config key "device"' : key}: ${device} needs executor: onnx (ONNX Runtime); executor: jax (jax-js) runs on the CPU only`);
  }
}

/** A config error: one line naming the key and the fix. */
export class ConfigError extends Error {}

export type NumberField = { type: "number"; min?: number; max?: number; exclusiveMin?: boolean; default: number };
export type IntField = { type: "int"; min?: number; max?: number; default: number };
export type StringField = { type: "string"; default: string };
export type EnumField<V extends string = string> = { type: "enum"; values: readonly V[]; default: V };
/** `length`: exactly this many numbers; `maxLength` defaults to L.MAX_LIST. */
export type NumbersField = { type: "numbers"; length?: number; maxLength?: number; default: readonly number[] };
/** A matrix bounds the count of all its numbers by `maxCount` (default L.MAX_LIST). */
export type MatrixField = { type: "matrix"; maxCount?: number; default: readonly (readonly number[])[] };
export type Field = NumberField | IntField | StringField | EnumField | NumbersField | MatrixField;

/** A section whose keys depend on its `kind`: one set of keys per kind (a union by kind). */
export type Variants<V extends Record<string, Record<string, Field>> = Record<string, Record<string, Field>>> = { variants: V; default: string };
type Entry = Field | Record<string, Field> | Variants;
export type Schema = Record<string, Entry>;

export const num = (d: number, min?: number, exclusiveMin = false, max?: number): NumberField => ({ type: "number", default: d, min, max, exclusiveMin });
/** An integer from `min` to `max` (default: any safe integer; every size has its bound in limits.ts). */
export const int = (d: number, min = 0, max = Number.MAX_SAFE_INTEGER): IntField => ({ type: "int", default: d, min, max });
const str = (d: string): StringField => ({ type: "string", default: d });
const oneOf = <const V extends string>(values: readonly V[], d: V): EnumField<V> => ({ type: "enum", values, default: d });
/** Exactly `length` numbers (a tuple in the config's type). */
const tuple = <const N extends 2 | 3>(length: N, d: readonly number[]): NumbersField & { length: N } => ({ type: "numbers", length, maxLength: length, default: d });
const numbers = (d: readonly number[], maxLength?: number): NumbersField => ({ type: "numbers", default: d, maxLength });
const variants = <V extends Record<string, Record<string, Field>>>(v: V, d: keyof V & string): Variants<V> => ({ variants: v, default: d });

// The config's type, derived from the schema (its one source of truth): snake_case keys become
// camelCase, fields their values, variants a union discriminated by `kind`.
type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type ValueOf<F> = F extends { type: "number" | "int" } ? number
  : F extends { type: "string" } ? string
  : F extends { type: "enum"; values: readonly (infer V)[] } ? V
  : F extends { type: "numbers"; length: 2 } ? readonly [number, number]
  : F extends { type: "numbers"; length: 3 } ? readonly [number, number, number]
  : F extends { type: "numbers" } ? readonly number[]
  : F extends { type: "matrix" } ? readonly (readonly number[])[]
  : never;
type Resolved<S> = S extends { type: string } ? ValueOf<S>
  : S extends { variants: infer V } ? { [K in keyof V]: { readonly kind: K } & Resolved<V[K]> }[keyof V]
  : { readonly [K in keyof S as Camel<K & string>]: Resolved<S[K]> };

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
const SCHEMA = {
  method: oneOf(["tbcm", "scm"], "tbcm"),
  executor: oneOf(EXECUTORS, "onnx"),
  /** ONNX Runtime's device for every program of the run (README "GPU"); webgpu and cuda need executor: onnx. */
  device: oneOf(DEVICES, "cpu"),
  seed: int(0, 0, L.MAX_SEED),
  /** One prompt per line; "" = every prompt the teacher knows (gmm) or prompts/train.txt (stack). */
  prompts_file: str(""),
  teacher: variants({
    /** The analytic teacher: per prompt a Gaussian mixture in R^dim (means drawn with means_seed unless given). */
    gmm: {
      dim: int(16, 1, L.MAX_GMM_DIM), prompts: int(10, 1, L.MAX_GMM_PROMPTS), components: int(3, 1, L.MAX_GMM_COMPONENTS), std: num(0.25, 0, true),
      means_seed: int(0, 0, L.MAX_SEED), means: { type: "matrix", default: [] } as MatrixField,
    },
    /** The shipped text-to-image stack; data_dir: Fashion-MNIST for the sCM baseline ("" = default). */
    stack: {
      model: str("models/fmnist/teacher.safetensors"), vae: str("models/fmnist/vae.safetensors"),
      evaluator: str("models/fmnist/evaluator.safetensors"), data_dir: str(""),
    },
    /** A teacher bundle (src/bundle/, README "Distil your own teacher"): teacher.json, transformer.onnx, prompt_embeddings.safetensors. */
    onnx: { dir: str("") },
  }, "gmm"),
  /** The analytic benchmark's student MLP; init: a flow-matching network to start from ("" = random). */
  student: {
    hidden: int(128, 1, L.MAX_WIDTH), embed_dim: int(128, 1, L.MAX_WIDTH), depth: int(3, 1, L.MAX_DEPTH), mlp_ratio: int(2, 1, L.MAX_RATIO),
    init: str(""),
  },
  /**
   * The teacher's sampling route (spec §3) and how each step draws its trajectory's angles:
   * jittered (spec), ordered (the route itself), logit_normal (flow times sigmoid(N(logit_mean,
   * logit_std²)), sorted) or mixed (each step jittered or logit_normal, 1/2 each); the logit keys
   * are read by logit_normal and mixed only. TBCM only.
   */
  route: {
    shift: num(D.ROUTE_SHIFT, 0, true), steps: int(D.ROUTE_STEPS, 3, L.MAX_ROUTE_STEPS),
    sampling: oneOf(ROUTE_SAMPLINGS, "jittered"),
    logit_mean: num(D.LOGIT_NORMAL_MEAN, -L.MAX_LOGIT_MEAN, false, L.MAX_LOGIT_MEAN),
    logit_std: num(D.LOGIT_NORMAL_STD, 0, true, L.MAX_LOGIT_STD),
    /**
     * Re-noised legs: each step also re-noises its trajectories' endpoints to one angle drawn
     * uniformly in `leg_range` (fresh noise) and runs the teacher from there to 0 in `leg_steps`
     * even steps, training on those states too: the states a 2- or 4-step sampler visits, which
     * no trajectory from pure noise passes through. 0 = off (the spec); the range defaults to
     * angles up to the spec's 2-step middle angle (bench/RESULTS.md §28).
     */
    leg_steps: int(0, 0, L.MAX_ROUTE_STEPS),
    leg_range: tuple(2, [0.1, D.TWO_STEP_MID]),
  },
  // each scale is a teacher pass per training pair, so a few hundred is already far past useful
  guidance: numbers(D.GUIDANCE_SCALES, 1000),
  /** Flow times [s_lo, s_hi] where the teacher's guidance applies (w = 1 outside); [0, 1] = everywhere, as in the spec. */
  guidance_interval: tuple(2, [0, 1]),
  /** Width (flow time) of a smooth switch at the interval's edges; 0 = a step. */
  guidance_ramp: num(0, 0),
  /** Scaled latent of an all-black image for the black filter; empty = the teacher's own (stack) or none. */
  black_latent: numbers([]),
  loss: {
    warmup: int(D.TANGENT_WARMUP, 0, L.MAX_STEPS), calm_start: int(D.CALM_START, 0, L.MAX_STEPS), calm_steps: int(D.CALM_STEPS, 1, L.MAX_STEPS),
    r_final: num(D.R_FINAL, 0, false, 1),
    /**
     * Weight of the endpoint regression: each pair's x̂0 pulled towards its own trajectory's ODE
     * endpoint (TBCM only; 0 = the spec's loss alone). See `endpointError`.
     */
    endpoint_weight: num(0, 0, false, L.MAX_ENDPOINT_WEIGHT),
  },
  optim: variants({
    adamw: {
      lr: num(3e-5, 0, true), betas: tuple(2, [0.9, 0.999]), eps: num(1e-8, 0, true), weight_decay: num(0, 0),
      schedule: oneOf(["constant", "cosine"], "constant"), warmup_steps: int(0, 0, L.MAX_STEPS), cooldown_steps: int(0, 0, L.MAX_STEPS),
    },
    came: {
      lr: num(3e-5, 0, true), betas: tuple(3, D.CAME_BETAS), eps: tuple(2, D.CAME_EPS), weight_decay: num(0, 0),
      clip_threshold: num(D.CAME_CLIP_THRESHOLD, 0, true),
      schedule: oneOf(["constant", "cosine"], "constant"), warmup_steps: int(0, 0, L.MAX_STEPS), cooldown_steps: int(0, 0, L.MAX_STEPS),
    },
  }, "adamw"),
  train: {
    steps: int(12000, 1, L.MAX_STEPS), prompts_per_step: int(8, 1, L.MAX_PROMPTS_PER_STEP), grad_clip: num(D.GRAD_CLIP, 0, true),
    /** Decay of the parameters' moving average (0: none); when set, the student is the average. */
    ema: num(0, 0, false, 0.9999),
    log_every: int(10, 1, L.MAX_STEPS), eval_every: int(1000, 1, L.MAX_STEPS), checkpoint_every: int(1000, 1, L.MAX_STEPS),
    /**
     * Every this many steps the student (the average when kept) is also kept as
     * snapshots/student-<step>.safetensors (0: never): curves against training time from one run
     * (bench/snapshot-curve.ts measures them).
     */
    snapshot_every: int(0, 0, L.MAX_STEPS),
  },
  eval: {
    noises_per_prompt: int(256, 2, L.MAX_EVAL_SAMPLES), ode_steps: int(128, 4, L.MAX_ODE_STEPS), projections: int(64, 1, L.MAX_PROJECTIONS),
    curve_noises: int(32, 1, L.MAX_CURVE_NOISES),
    /** Images per FD / accuracy measurement, and their guidance scale. */
    samples: int(1000, 2, L.MAX_EVAL_SAMPLES), guidance: num(4.5, 0),
    /** The middle angle of 2-step sampling (spec §6: 1.0 in the reference's validation). */
    two_step_mid: num(D.TWO_STEP_MID, 0, true, Math.PI / 2),
    /** Angles of 3 or more steps: shifted (the teacher's schedule, spec §6), from_mid (two_step_mid, then evenly to 0) or tail (two_step_mid, then geometrically to 0.1). */
    multi_step: oneOf(D.MULTI_STEP_RULES, "shifted"),
    /** Share of fresh noise when the student sampler re-noises (spec §6: 1; see `scmStep`). */
    eta: num(D.RENOISE_ETA, 0, false, 1),
  },
  /** `tbcm train-teacher`: fitting the student network to the guided teacher (a teacher copy to start from). */
  pretrain: { steps: int(4000, 1, L.MAX_STEPS), batch: int(256, 1, L.MAX_BATCH), lr: num(1e-3, 0, true) },
} satisfies Schema;

export type TbcmConfig = Resolved<typeof SCHEMA>;
export type TeacherKindName = TbcmConfig["teacher"]["kind"];
/** A config of one teacher kind. */
export type ConfigOf<K extends TeacherKindName> = TbcmConfig & { readonly teacher: Extract<TbcmConfig["teacher"], { kind: K }> };

export type GmmConfig = ConfigOf<"gmm">;
export type StackDistillConfig = ConfigOf<"stack">;
export type BundleConfig = ConfigOf<"onnx">;

/** The config narrowed to its teacher kind (a run of another kind is an error). */
export function configOf<K extends TeacherKindName>(c: TbcmConfig, kind: K): ConfigOf<K> {
  if (c.teacher.kind !== kind) throw new ConfigError(`this needs a run or config on the ${kind} teacher, not ${c.teacher.kind}`);
  return c as ConfigOf<K>;
}

/** Whether key `path` ("student", "eval.samples", …) is read for a teacher kind. */
function applies(path: string, kind: TeacherKindName): boolean {
  return ONLY_FOR[path]?.includes(kind) ?? true;
}

/** Keys (or sections) that only some teacher kinds read: set for another kind, they are an error, not silently ignored. */
const ONLY_FOR: Record<string, readonly TeacherKindName[]> = {
  student: ["gmm"], pretrain: ["gmm"],
  "eval.noises_per_prompt": ["gmm"], "eval.ode_steps": ["gmm"], "eval.projections": ["gmm"],
  "eval.samples": ["stack", "onnx"], "eval.guidance": ["stack"],
  // a teacher bundle's guidance scales are its teacher.json's (guidance_scales, default_guidance)
  guidance: ["gmm", "stack"], "eval.two_step_mid": ["stack", "onnx"], "eval.multi_step": ["stack", "onnx"], guidance_ramp: ["stack", "onnx"],
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
      if (f.length !== undefined && v.length !== f.length) return fail(`a list of ${f.length} numbers`);
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

const isField = (x: Entry): x is Field => typeof (x as Field).type === "string";
const isVariants = (x: Entry): x is Variants => typeof (x as Variants).variants === "object";
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The section `k` of `raw` (absent: empty), or an error naming it. */
function sectionOf(raw: Record<string, unknown>, k: string, prefix: string): Record<string, unknown> {
  const v = Object.hasOwn(raw, k) ? raw[k] : undefined;
  if (v === undefined || v === null) return {};
  if (!isMapping(v)) throw new ConfigError(`config key "${prefix}${k}": expected a section (key: value lines), got ${showValue(v)}`);
  return v;
}

export function resolve(raw: Record<string, unknown>, schema: Schema, prefix: string, also: readonly string[] = []): Record<string, unknown> {
  // own keys only: "__proto__", "constructor", "toString" … are unknown keys, not inherited members
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(schema, k)) {
      throw new ConfigError(`unknown config key "${prefix}${k}" (allowed in ${prefix ? `"${prefix.slice(0, -1)}"` : "the top level"}: ${[...also, ...Object.keys(schema)].join(", ")})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) {
    if (isField(f)) {
      const v = Object.hasOwn(raw, k) ? raw[k] : undefined;
      out[camel(k)] = v === undefined || v === null ? f.default : checkField(prefix + k, f, v);
    } else if (isVariants(f)) {
      const section = sectionOf(raw, k, prefix);
      const kinds = Object.keys(f.variants);
      const kind = checkField(`${prefix}${k}.kind`, { type: "enum", values: kinds, default: f.default }, section.kind ?? f.default) as string;
      const { kind: _, ...rest } = section;
      out[camel(k)] = { kind, ...resolve(rest, f.variants[kind], `${prefix}${k}.`, ["kind"]) };
    } else {
      out[camel(k)] = resolve(sectionOf(raw, k, prefix), f, `${prefix}${k}.`);
    }
  }
  return out;
}

/**
 * The raw (snake_case) form of a resolved config: what `parseConfig` reads back to the same
 * config. Run directories store it as config.json.
 */
export function configToRaw(c: TbcmConfig): Record<string, unknown> {
  const raw = (schema: Schema, v: Record<string, unknown>, prefix = ""): Record<string, unknown> =>
    Object.fromEntries(Object.entries(schema).filter(([k]) => applies(prefix + k, c.teacher.kind)).map(([k, f]) => {
      const value = v[camel(k)];
      if (isField(f)) return [k, value];
      if (isVariants(f)) {
        const section = value as Record<string, unknown> & { kind: string };
        return [k, { kind: section.kind, ...raw(f.variants[section.kind], section) }];
      }
      return [k, raw(f, value as Record<string, unknown>, `${k}.`)];
    }));
  return raw(SCHEMA, c as unknown as Record<string, unknown>);
}

/** Validates a parsed YAML/JSON object and returns the resolved config. */
export function parseConfig(raw: unknown): TbcmConfig {
  if (raw === null || raw === undefined) raw = {};
  if (!isMapping(raw)) throw new ConfigError("config must be a mapping of sections (key: value)");
  const c = resolve(raw, SCHEMA, "") as TbcmConfig;
  const kind = c.teacher.kind;
  for (const [path, kinds] of Object.entries(ONLY_FOR)) {
    const [k, sub] = path.split(".");
    const section = Object.hasOwn(raw, k) ? raw[k] : undefined;
    const set = sub === undefined ? section !== undefined && section !== null : isMapping(section) && Object.hasOwn(section, sub) && section[sub] !== null;
    if (set && !kinds.includes(kind)) {
      throw new ConfigError(`config key "${path}" applies to teacher.kind ${kinds.join(" or ")}, not ${kind}: remove it`);
    }
  }
  checkExecutorDevice(c.executor, c.device);
  if (c.guidance.length === 0) throw new ConfigError(`config key "guidance": give at least one guidance scale, e.g. [4, 4.5, 5]`);
  checkGuidanceInterval("guidance_interval", c.guidanceInterval);
  if (c.method === "scm" && c.route.sampling !== "jittered") {
    throw new ConfigError(`config key "route.sampling": the sCM baseline draws its times from data, not along a route; remove the key or use method: tbcm`);
  }
  const [legLo, legHi] = c.route.legRange;
  if (!(legLo > 0 && legLo <= legHi && legHi < Math.PI / 2)) {
    throw new ConfigError(`config key "route.leg_range": expected two angles 0 < lo ≤ hi < π/2, e.g. [0.1, 0.7]; got ${JSON.stringify(c.route.legRange)}`);
  }
  if (c.method === "scm" && c.route.legSteps > 0) {
    throw new ConfigError(`config key "route.leg_steps": the sCM baseline has no trajectories to re-noise; remove the key or use method: tbcm`);
  }
  if (c.method === "scm" && c.loss.endpointWeight > 0) {
    throw new ConfigError(`config key "loss.endpoint_weight": the sCM baseline's pairs lie on no teacher trajectory, so they have no endpoint; remove the key or use method: tbcm`);
  }
  const t = c.teacher;
  if (t.kind === "gmm") {
    if (c.guidanceInterval[0] > 0 || c.guidanceInterval[1] < 1) {
      throw new ConfigError(`config key "guidance_interval": the analytic gmm teacher guides everywhere; remove the key or use teacher.kind: stack`);
    }
    if (t.prompts * t.components * t.dim > L.MAX_GMM_MEANS) {
      throw new ConfigError(`config key "teacher.prompts": prompts × components × dim = ${t.prompts}·${t.components}·${t.dim} means exceed ${L.MAX_GMM_MEANS} numbers`);
    }
    if (t.means.length && (t.means.length !== t.prompts * t.components || t.means.some((m) => m.length !== t.dim))) {
      throw new ConfigError(`config key "teacher.means": expected ${t.prompts}·${t.components} rows of ${t.dim} numbers (prompts × components × dim)`);
    }
  }
  return c;
}

/** The learning-rate schedule of a config's optimiser section. */
export function lrSchedule(o: TbcmConfig["optim"]): LrSchedule {
  return { kind: o.schedule, warmup: o.warmupSteps, cooldown: o.cooldownSteps };
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
  const kind = parseConfig(raw).teacher.kind; // the same validation as a run
  const given = (raw ?? {}) as Record<string, Record<string, unknown> | unknown>;
  const line = (indent: string, k: string, f: Field, v: unknown) => {
    const yamlValue = (x: unknown): string => (globalThis.Array.isArray(x) ? `[${x.map(yamlValue).join(", ")}]` : JSON.stringify(x));
    const text = `${indent}${k}: ${yamlValue(v ?? f.default)}`;
    return `${text.padEnd(48)} # ${accepts(f)}${v === undefined || v === null ? "" : " (set)"}`;
  };
  const out: string[] = [];
  for (const [k, f] of Object.entries(SCHEMA as Schema)) {
    if (!applies(k, kind)) continue; // keys of other teacher kinds
    if (isField(f)) {
      out.push(line("", k, f, given[k]));
      continue;
    }
    out.push(`${k}:`);
    const section = (given[k] ?? {}) as Record<string, unknown>;
    let fields: Record<string, Field> = f as Record<string, Field>;
    if (isVariants(f)) {
      const kind = (section.kind as string | undefined) ?? f.default;
      out.push(line("  ", "kind", { type: "enum", values: Object.keys(f.variants), default: f.default }, section.kind));
      fields = f.variants[kind];
    }
    for (const [kk, ff] of Object.entries(fields)) if (applies(`${k}.${kk}`, kind)) out.push(line("  ", kk, ff, section[kk]));
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
    text = readFileSync(shippedPath(path), "utf8");
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

/** The config a run directory holds (its config.json, written by `configToRaw`), validated as a config. */
export function configFromRun(raw: unknown, path: string): TbcmConfig {
  try {
    return parseConfig(raw);
  } catch (e) {
    throw new ConfigError(`"${path}" is not the config of this tbcm's runs: ${(e as Error).message}`);
  }
}
