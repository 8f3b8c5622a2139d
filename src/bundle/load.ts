/**
 * Loading a teacher bundle: the manifest, the denoiser imported as a jax-js function
 * (src/onnx/), its input contract checked against the manifest, and the prompt-embeddings
 * table. `flow` is the denoiser as a flow-matching velocity over the loop's flat latent rows.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, type Array } from "@jax-js/jax";
import { ConfigError, type ExecutorKind } from "../config/schema.ts";
import { importOnnx, type ImportedOnnx } from "../onnx/graph.ts";
import { readOnnxFile } from "../onnx/reader.ts";
import type { ElemType } from "../executor/lower.ts";
import { embeddingWidth, findTimeEmbedding, tensorShapes } from "./timeEmbedding.ts";
import type { OnnxDim } from "../onnx/reader.ts";
import { loadSafetensors } from "../numerics/safetensors.ts";
import { type BundleManifest, readManifest, latentSize } from "./manifest.ts";

/** The prompt-embeddings table: prompt text → one condition row. */
export type EmbeddingTable = {
  readonly prompts: readonly string[];
  /** Per-prompt condition shape (without the batch): the one condition tensor's, or [total size] for several. */
  readonly shape: readonly number[];
  /** The condition tensors a row holds, in order: each one's per-prompt shape; a row is their flattened concatenation (none: an unconditional teacher's). */
  readonly parts: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly rows: Float32Array;
  /** Row index of each prompt (the first, if a prompt is listed twice). */
  readonly index: ReadonlyMap<string, number>;
  /** The values of the constant inputs (`transformer.inputs.constant`), by input name. */
  readonly constants: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;
};

/** Rows per call of a program on a bundle's denoiser (a foreign graph can be large). */
export const BUNDLE_ROWS = 64;

export type LoadedBundle = {
  readonly dir: string;
  readonly manifest: BundleManifest;
  readonly transformer: ImportedOnnx;
  /** The denoiser's trainable parameter names: student and teacher parameters are lists in this order. */
  readonly paramNames: readonly string[];
  /** Its other floating initializers, constants of the student (scalars, buffers outside `transformer.trainable`). */
  readonly frozenNames: readonly string[];
  /** Flat latent size d. */
  readonly dim: number;
  readonly table: EmbeddingTable;
  /** Fresh arrays of the denoiser's parameters (in `paramNames` order). */
  paramList(): Array[];
  /**
   * The denoiser as a flow velocity: xFlow [B, d] (flat rows of latent_shape), flow time s
   * [B, 1] or [1, 1], cond [B, ...table.shape] (table rows); returns v [B, d] (then the time-embedding tensor [B, W] when
   * `o.tapTimeEmbedding`). `o.addTimeEmbedding` is added to the time embedding first; `o.guidance`
   * [B, 1] is the scale a guidance-distilled model takes (required exactly when it has a guidance
   * input). Consumes its arguments.
   */
  flow(params: Array[], xFlow: Array, s: Array, cond: Array, o?: { addTimeEmbedding?: Array; tapTimeEmbedding?: boolean; guidance?: Array; constants?: readonly Array[] }): Array[];
  /** Width W of the time embedding [batch, W] (`manifest.transformer.timeEmbedding`, which must be set); traced once, abstractly. */
  timeEmbeddingWidth(): number;
};

const FLOATS = ["float32", "float16", "bfloat16"];
/** Inputs (conditions, constants) that are not floating point, and how the table's float32 values become one. */
const INTEGER_INPUTS: Record<string, (a: Array) => Array> = {
  int64: (a) => a.astype(np.int32), // the importer's integers are int32; table values are whole numbers (read exactly)
  int32: (a) => a.astype(np.int32),
  bool: (a) => np.notEqual(a, 0),
};

const fmt = (s: readonly OnnxDim[]) => `[${s.map((d) => d ?? "?").join(", ")}]`;

/**
 * Reads the prompt-embeddings table of a bundle: tensor "embeddings" [P, ...] for one condition
 * input, or one tensor [P, ...] per condition input, named as the input, for several.
 */
export function loadEmbeddingTable(file: string, emptyPrompt: string, conditionInputs: readonly string[] = ["embeddings"], constantInputs: readonly string[] = []): EmbeddingTable {
  // an unconditional teacher needs the file only for its constant inputs' values
  if (conditionInputs.length === 0 && constantInputs.length === 0) return unconditionalTable(new Map());
  if (!existsSync(file)) throw new ConfigError(`no prompt-embeddings table at "${file}" (teacher.json: prompt_embeddings.file${conditionInputs.length ? "" : "; it holds the constant inputs' values"})`);
  const { tensors, metadata } = loadSafetensors(file);
  const constants = new Map(constantInputs.map((name) => {
    const t = tensors.get(name);
    if (!t) throw new ConfigError(`"${file}" has no tensor "${name}" for the constant input of that name (teacher.json: transformer.inputs.constant)`);
    return [name, t] as const;
  }));
  if (conditionInputs.length === 0) return unconditionalTable(constants);
  const names = conditionInputs.length === 1 ? ["embeddings"] : conditionInputs;
  const parts = names.map((name) => {
    const t = tensors.get(name);
    if (!t) throw new ConfigError(`"${file}" has no tensor "${name}" [P, ...]${names.length > 1 ? " (one per condition input)" : ""} (it has: ${[...tensors.keys()].slice(0, 5).join(", ") || "none"})`);
    return { name, t };
  });
  const t = parts[0].t;
  let prompts: unknown;
  try {
    prompts = JSON.parse(metadata.prompts ?? "");
  } catch {
    prompts = undefined;
  }
  if (!globalThis.Array.isArray(prompts) || !prompts.every((p) => typeof p === "string")) throw new ConfigError(`"${file}": metadata "prompts" is not a JSON list of prompt strings`);
  for (const { name, t: u } of parts) {
    if (u.shape.length < 1 || prompts.length !== u.shape[0]) throw new ConfigError(`"${file}": "${name}" has shape [${u.shape}] for ${prompts.length} prompts; expected [${prompts.length}, ...]`);
  }
  const list = prompts as string[];
  const index = new Map<string, number>();
  list.forEach((p, i) => { if (!index.has(p)) index.set(p, i); });
  if (!index.has(emptyPrompt)) throw new ConfigError(`"${file}" has no entry for the empty prompt ${JSON.stringify(emptyPrompt)} (teacher.json: prompt_embeddings.empty_prompt); add it to the table`);
  if (parts.length === 1) return { prompts: list, shape: t.shape.slice(1), parts: [{ name: names[0], shape: t.shape.slice(1) }], rows: t.data, index, constants };
  // Several tensors: each prompt's row is their flattened concatenation.
  const sizes = parts.map(({ t: u }) => u.data.length / list.length), total = sizes.reduce((a, b) => a + b, 0);
  const rows = new Float32Array(list.length * total);
  for (let p = 0; p < list.length; p++) {
    let at = p * total;
    parts.forEach(({ t: u }, k) => { rows.set(u.data.subarray(p * sizes[k], (p + 1) * sizes[k]), at); at += sizes[k]; });
  }
  return { prompts: list, shape: [total], parts: parts.map(({ name, t: u }) => ({ name, shape: u.shape.slice(1) })), rows, index, constants };
}

/**
 * The table of an unconditional teacher: one entry, the empty prompt, whose row is a placeholder the
 * denoiser never reads (no condition input; `splitConditions` gives none).
 */
function unconditionalTable(constants: EmbeddingTable["constants"]): EmbeddingTable {
  return { prompts: [""], shape: [1], parts: [], rows: new Float32Array(1), index: new Map([["", 0]]), constants };
}

/** The rows of the table's entries `entries` (row indices), one after another: a host batch [entries.length, ...table.shape]. */
export function tableRows(table: EmbeddingTable, entries: readonly number[]): Float32Array {
  const size = table.rows.length / table.prompts.length, out = new Float32Array(entries.length * size);
  entries.forEach((j, r) => out.set(table.rows.subarray(j * size, (j + 1) * size), r * size));
  return out;
}

/** A batch of table rows [B, ...table.shape] as the condition inputs' arrays [B, ...part shape], in `table.parts` order (consumes `c`). */
export function splitConditions(table: EmbeddingTable, c: Array): Array[] {
  if (table.parts.length === 0) return (c.dispose(), []);
  if (table.parts.length === 1) return [c];
  const B = c.shape[0];
  const flat = c.reshape([B, -1]);
  let at = 0;
  const out = table.parts.map(({ shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const piece = flat.ref.slice([], [at, at + size]).reshape([B, ...shape]);
    at += size;
    return piece;
  });
  flat.dispose();
  return out;
}

/**
 * Reads a bundle directory; every mismatch between the manifest, the ONNX file and the table is a
 * one-line error. `executor`: the kind that will run its programs (the importer picks each op's
 * fastest form for it; the default, onnx, also for files that are lowered and exported).
 */
export function loadBundle(dir: string, executor: ExecutorKind = "onnx"): LoadedBundle {
  const manifest = readManifest(dir);
  const m = manifest.transformer;
  const file = join(dir, m.file);
  if (!existsSync(file)) throw new ConfigError(`no denoiser at "${file}" (teacher.json: transformer.file)`);
  const model = readOnnxFile(file);
  const transformer = importOnnx(model, { target: executor });
  const where = `"${file}"`;
  const inputNames = transformer.inputs.map((i) => i.name);
  const roles: [string, string][] = [["latent", m.inputs.latent], ["time", m.inputs.time], ...m.inputs.condition.map((n): [string, string] => ["condition", n]),
    ...(m.inputs.guidance ? [["guidance", m.inputs.guidance] as [string, string]] : []), ...m.inputs.constant.map((n): [string, string] => ["constant", n])];
  for (const [role, name] of roles) {
    if (!inputNames.includes(name)) throw new ConfigError(`teacher.json key "transformer.inputs.${role}": ${where} has no input "${name}" (its inputs: ${inputNames.join(", ")})`);
  }
  if (new Set(roles.map(([, n]) => n)).size !== roles.length) throw new ConfigError(`teacher.json key "transformer.inputs": an input is named for two roles (${roles.map(([r, n]) => `${r}: ${n}`).join(", ")})`);
  const named = new Set(roles.map(([, n]) => n));
  const extra = inputNames.find((n) => !named.has(n));
  if (extra !== undefined) throw new ConfigError(`${where} has an input "${extra}" that teacher.json does not name (transformer.inputs names latent, time, the condition inputs, a guidance input and constant inputs: name it as one of them)`);
  if (!transformer.outputs.some((o) => o.name === m.output)) throw new ConfigError(`teacher.json key "transformer.output": ${where} has no output "${m.output}" (its outputs: ${transformer.outputs.map((o) => o.name).join(", ")})`);
  const spec = (name: string) => transformer.inputs.find((i) => i.name === name)!;
  const batchFixed = (s: readonly OnnxDim[]) => typeof s[0] === "number";
  const lat = spec(m.inputs.latent);
  const L = manifest.latentShape;
  if (lat.shape.length !== L.length + 1 || L.some((d, i) => typeof lat.shape[i + 1] === "number" && lat.shape[i + 1] !== d)) {
    throw new ConfigError(`${where}: input "${lat.name}" has shape ${fmt(lat.shape)}; teacher.json's latent_shape [${L}] needs [batch, ${L.join(", ")}]`);
  }
  const time = spec(m.inputs.time);
  if (time.shape.length !== 1 && !(time.shape.length === 2 && (time.shape[1] === 1 || time.shape[1] === null || typeof time.shape[1] === "string"))) {
    throw new ConfigError(`${where}: time input "${time.name}" has shape ${fmt(time.shape)}; expected one time per sample, [batch] or [batch, 1]`);
  }
  const conds = m.inputs.condition.map(spec);
  const guidance = m.inputs.guidance ? spec(m.inputs.guidance) : undefined;
  if (guidance && guidance.shape.length !== 1 && !(guidance.shape.length === 2 && guidance.shape[1] !== undefined && (guidance.shape[1] === 1 || typeof guidance.shape[1] !== "number"))) {
    throw new ConfigError(`${where}: guidance input "${guidance.name}" has shape ${fmt(guidance.shape)}; expected one scale per sample, [batch] or [batch, 1]`);
  }
  for (const s of [lat, time, ...conds, ...(guidance ? [guidance] : [])]) {
    if (batchFixed(s.shape)) throw new ConfigError(`${where}: input "${s.name}" has a fixed batch of ${s.shape[0]}; export the denoiser with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={"${s.name}": {0: "batch"}, ...}))`);
    // a condition may also be integer or boolean (an attention mask): its table tensor holds the values, cast on the way in
    const allowed = conds.includes(s) ? [...FLOATS, ...Object.keys(INTEGER_INPUTS)] : FLOATS;
    if (!allowed.includes(s.dtype)) {
      throw new ConfigError(`${where}: input "${s.name}" is ${s.dtype}; ${conds.includes(s) ? "a condition input must be floating point, int64, int32 or bool"
        : s === time ? "the time input must be floating point (the consistency loss differentiates the teacher in time; a model cast to integer timesteps has no such derivative: export it with a float timestep)"
        : "the latent, time and guidance inputs must be floating point"}`);
    }
  }
  const table = loadEmbeddingTable(join(dir, manifest.promptEmbeddings.file), manifest.promptEmbeddings.emptyPrompt, m.inputs.condition, m.inputs.constant);
  // a constant input: its tensor holds the input's shape, without the batch axis where that is dynamic (then repeated over the batch)
  const constants = m.inputs.constant.map((name) => {
    const s = spec(name), value = table.constants.get(name)!, batched = s.shape.length > 0 && typeof s.shape[0] !== "number";
    const want = batched ? s.shape.slice(1) : s.shape;
    if (want.length !== value.shape.length || want.some((dim, i) => typeof dim === "number" && dim !== value.shape[i])) {
      throw new ConfigError(`${where}: constant input "${name}" has shape ${fmt(s.shape)}; its table tensor has shape [${value.shape}] (${batched ? "the input's shape without its batch axis" : "the input's shape"})`);
    }
    if (![...FLOATS, ...Object.keys(INTEGER_INPUTS)].includes(s.dtype)) throw new ConfigError(`${where}: constant input "${name}" is ${s.dtype}; floating point, int64, int32 or bool are fed`);
    const cast = INTEGER_INPUTS[s.dtype] ?? ((a: Array) => a);
    return { name, batched, shape: [...value.shape], data: value.data, cast };
  });
  conds.forEach((cond, k) => {
    const shape = table.parts[k].shape, what = table.parts.length === 1 ? "the embeddings table's rows are" : `its table tensor "${table.parts[k].name}" has rows`;
    if (cond.shape.length !== shape.length + 1 || shape.some((d, i) => typeof cond.shape[i + 1] === "number" && cond.shape[i + 1] !== d)) {
      throw new ConfigError(`${where}: condition input "${cond.name}" has shape ${fmt(cond.shape)}, but ${what} [${shape}]`);
    }
  });
  // an integer or boolean input takes whole numbers (0 or 1 for bool): a table value in between would be silently truncated
  const rowSize = table.rows.length / table.prompts.length;
  let offset = 0;
  conds.forEach((cond, k) => {
    const size = table.parts[k].shape.reduce((a, b) => a * b, 1);
    if (Object.hasOwn(INTEGER_INPUTS, cond.dtype)) {
      for (let p = 0; p < table.prompts.length; p++) {
        for (let i = 0; i < size; i++) {
          const x = table.rows[p * rowSize + offset + i];
          if (cond.dtype === "bool" ? x !== 0 && x !== 1 : !Number.isInteger(x)) {
            throw new ConfigError(`${where}: condition input "${cond.name}" is ${cond.dtype}, but its table tensor "${table.parts[k].name}" holds ${x} (prompt ${p}, element ${i}); store ${cond.dtype === "bool" ? "0 and 1" : "whole numbers"}`);
          }
        }
      }
    }
    offset += size;
  });
  // every input at batch 1 as the importer takes it: the time embedding's shape is read by tracing with these
  const elem = (dtype: string): ElemType => (dtype === "bool" ? "bool" : Object.hasOwn(INTEGER_INPUTS, dtype) ? "int32" : "float32");
  const batch1 = transformer.inputs.map((i) => {
    const k = m.inputs.condition.indexOf(i.name), c = constants.find((x) => x.name === i.name);
    const shape = i.name === m.inputs.latent ? [1, ...L] : k >= 0 ? [1, ...table.parts[k].shape] : c ? (c.batched ? [1, ...c.shape] : c.shape) : i.shape.length === 1 ? [1] : [1, 1];
    return { shape, dtype: elem(i.dtype) };
  });
  // "auto": found from the graph (timeEmbedding.ts), its width with it; a named tensor's width is traced when first asked for
  const found = m.timeEmbedding === "auto" ? findTimeEmbedding(model.graph, transformer, m.inputs.time, batch1) : undefined;
  const timeEmbedding = found?.name ?? m.timeEmbedding;
  let width = found?.width;
  if (timeEmbedding && !transformer.tensorNames.has(timeEmbedding)) {
    throw new ConfigError(`teacher.json key "transformer.time_embedding": no node of ${where} computes a tensor "${timeEmbedding}"`);
  }
  const all = Object.keys(transformer.params);
  const isTrainable = (n: string) => (m.trainable.length ? m.trainable.some((p) => n.startsWith(p)) : transformer.params[n].data.length > 1);
  const paramNames = all.filter(isTrainable), frozenNames = all.filter((n) => !isTrainable(n));
  if (paramNames.length === 0) {
    throw new ConfigError(m.trainable.length ? `teacher.json key "transformer.trainable": no initializer of ${where} matches [${m.trainable.map((p) => JSON.stringify(p)).join(", ")}]`
      : `${where} has no floating initializer of more than one element: no weights for the student to train (a denoiser exported with its weights as inputs? export them as initializers)`);
  }
  const initial = transformer.paramArrays();
  const frozen = frozenNames.map((n) => initial[n]);
  paramNames.forEach((n) => initial[n].dispose());
  const d = latentSize(manifest);
  const outIndex = transformer.outputs.findIndex((o) => o.name === m.output);
  // position of each ONNX input in [latent, time, ...conditions, guidance, ...constants]
  const nc = m.inputs.condition.length;
  const order = transformer.inputs.map((i) => (i.name === m.inputs.latent ? 0 : i.name === m.inputs.time ? 1 : i.name === m.inputs.guidance ? 2 + nc
    : m.inputs.constant.includes(i.name) ? 2 + nc + (m.inputs.guidance ? 1 : 0) + m.inputs.constant.indexOf(i.name) : 2 + m.inputs.condition.indexOf(i.name)));
  const guidanceRank = guidance?.shape.length ?? 0;
  const timeRank = time.shape.length;
  const castCondition = conds.map((s) => INTEGER_INPUTS[s.dtype] ?? ((a: Array) => a));
  return {
    dir, manifest: { ...manifest, transformer: { ...m, timeEmbedding } }, transformer, paramNames, frozenNames, dim: d, table,
    paramList: () => paramNames.map((n) => { const t = transformer.params[n]; return np.array(t.data, { shape: [...t.shape] }); }),
    timeEmbeddingWidth() {
      if (!timeEmbedding) throw new Error("the bundle names no time embedding");
      if (width === undefined) {
        const [shape] = tensorShapes(transformer, batch1, [timeEmbedding]);
        width = embeddingWidth(shape);
        if (width === undefined) throw new ConfigError(`teacher.json key "transformer.time_embedding": tensor "${timeEmbedding}" has shape [${shape}] at batch 1; a guidance embedding is added to a [batch, width] time embedding`);
      }
      return width;
    },
    flow(params, xFlow, s, c, o = {}) {
      const B = xFlow.shape[0];
      const ps = Object.fromEntries([...paramNames.map((n, i) => [n, params[i]]), ...frozenNames.map((n, i) => [n, frozen[i].ref])]);
      const sB = s.shape[0] === B ? s : np.broadcastTo(s, [B, 1]);
      // the model's own time: s, or 1 − s for a model with noise at 0 (whose velocity then points the other way)
      const t = (m.noiseAt === 1 ? sB.ref : sB.ref.mul(-1).add(1)).mul(m.timeScale).reshape(timeRank === 1 ? [B] : [B, 1]);
      const byRole = [xFlow.ref.reshape([B, ...L]), t, ...splitConditions(table, c).map((a, k) => castCondition[k](a))];
      if (guidance) {
        if (!o.guidance) throw new Error(`the denoiser takes its guidance scale ("${guidance.name}"): flow needs o.guidance`);
        const g = o.guidance.shape[0] === B ? o.guidance : np.broadcastTo(o.guidance, [B, 1]);
        byRole.push(g.mul(m.guidanceInputScale).reshape(guidanceRank === 1 ? [B] : [B, 1]));
      } else o.guidance?.dispose();
      // the constant inputs: the table's values, or the caller's (an export's inputs, fed as the teacher's are)
      constants.forEach((k, i) => {
        if (o.constants) return byRole.push(k.cast(o.constants[i]));
        const a = np.array(k.data).reshape(k.shape);
        byRole.push(k.cast(k.batched ? np.broadcastTo(a.reshape([1, ...k.shape]), [B, ...k.shape]) : a));
      });
      const tap = o.tapTimeEmbedding && timeEmbedding ? [timeEmbedding] : [];
      const add = o.addTimeEmbedding && timeEmbedding ? { [timeEmbedding]: o.addTimeEmbedding } : {};
      const outs = transformer.apply(ps, order.map((r) => byRole[r]), { add, tap });
      if (outs[outIndex].size !== B * d) {
        const shape = outs[outIndex].shape;
        outs.forEach((a) => a.dispose());
        xFlow.dispose(); sB.dispose();
        throw new ConfigError(`${where}: output "${m.output}" has shape [${shape}] for a latent [${B}, ${L}]; it must be the prediction alone, shaped as the latent${shape[1] === 2 * L[0] ? " (this one has twice the latent's channels, as a model that also predicts its variance does, DiT's and SiT's learn_sigma: export a wrapper that returns out.chunk(2, dim=1)[0])" : ""}`);
      }
      const out = outs[outIndex].reshape([B, d]);
      // the flow velocity v: from the clean latent, (x_s − x̂0)/s; a velocity in a noise-at-0 model's own time is −v
      const v = m.prediction === "x0" ? xFlow.sub(out).div(sB) : (xFlow.dispose(), sB.dispose(), m.noiseAt === 1 ? out : out.mul(-1));
      const tapped = outs.slice(transformer.outputs.length);
      outs.slice(0, transformer.outputs.length).forEach((a, i) => i !== outIndex && a.dispose());
      return [v, ...tapped];
    },
  };
}
