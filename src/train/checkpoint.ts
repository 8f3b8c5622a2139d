/**
 * Checkpoints: parameters, optimiser state, the step and the resolved config in one
 * safetensors file, written atomically (temporary file + rename) so a killed run never leaves
 * a half-written checkpoint.
 */
import { existsSync } from "node:fs";
import { type Tree, namedLeaves, fromNamedLeaves } from "../numerics/tree.ts";
import { type HostTensor, saveSafetensors, loadSafetensors, assertFinite } from "../numerics/safetensors.ts";
import { hostTensors, checkLeaves, toArrays } from "../numerics/params.ts";
import { MAX_STEPS } from "../config/limits.ts";
import type { LeafState } from "./optim.ts";

/**
 * `ema`: the moving average of the parameters when the run keeps one, as host arrays in the
 * parameters' leaf order (it lives on the host between saves, so it never visits jax-js).
 */
export type Checkpoint<P extends Tree> = { params: P; state: LeafState[]; step: number; config: string; ema?: Float32Array[] };

export function saveCheckpoint(path: string, c: Checkpoint<Tree>): void {
  const tensors = new Map<string, HostTensor>();
  hostTensors(c.params, "params.", tensors);
  hostTensors(c.state as unknown as Tree, "opt.", tensors);
  if (c.ema) {
    const leaves = namedLeaves(c.params);
    if (c.ema.length !== leaves.length) throw new Error(`the parameter average has ${c.ema.length} arrays, the parameters ${leaves.length}`);
    leaves.forEach(([name, a], i) => tensors.set(`ema.${name}`, { shape: a.shape.slice(), data: c.ema![i] }));
  }
  saveSafetensors(path, tensors, { step: String(c.step), config: c.config, format: "tbcm-checkpoint-1" });
}

/**
 * Loads a checkpoint into trees shaped like `params` and `state` (neither is consumed). Everything
 * read back is validated, with a one-line error naming the file: the format tag, `step` a
 * non-negative integer ≤ `maxStep` (written by `String(step)`, so digits only), `config` JSON of
 * an object, every tensor one of the expected parameter / optimiser-state / average tensors with
 * its shape, none missing, and every value finite.
 */
export function loadCheckpoint<P extends Tree>(path: string, params: P, state: LeafState[], maxStep = MAX_STEPS): Checkpoint<P> {
  if (!existsSync(path)) throw new Error(`no checkpoint at "${path}": nothing to resume (run without --resume)`);
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata.format !== "tbcm-checkpoint-1") throw new Error(`"${path}" is not a tbcm checkpoint`);
  const stepText = metadata.step;
  if (typeof stepText !== "string" || !/^(0|[1-9][0-9]{0,15})$/.test(stepText) || Number(stepText) > maxStep) {
    throw new Error(`"${path}": checkpoint step ${JSON.stringify(stepText ?? null)} is not an integer from 0 to ${maxStep} (a damaged or foreign checkpoint; use a new --out)`);
  }
  const config = metadata.config;
  let parsed: unknown;
  try {
    parsed = JSON.parse(config ?? "");
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || globalThis.Array.isArray(parsed)) {
    throw new Error(`"${path}": the checkpoint's config is not a JSON object (a damaged or foreign checkpoint; use a new --out)`);
  }
  assertFinite(tensors, path);
  const part = (prefix: string) => {
    const m = new Map<string, HostTensor>();
    for (const [name, t] of tensors) if (name.startsWith(prefix)) m.set(name.slice(prefix.length), t);
    return m;
  };
  const other = [...tensors.keys()].find((n) => !/^(params|opt|ema)\./.test(n));
  if (other !== undefined) throw new Error(`"${path}": unexpected tensor "${other}" in a checkpoint (it holds params.*, opt.* and ema.*)`);
  const [p, s, emaPart] = [part("params."), part("opt."), part("ema.")];
  checkLeaves(path, params, p, "params.", "parameter");
  checkLeaves(path, state as unknown as Tree, s, "opt.", "optimiser state");
  if (emaPart.size > 0) checkLeaves(path, params, emaPart, "ema.", "parameter average"); // all of it or none
  const leaves = namedLeaves(params);
  const ema = leaves.map(([name]) => emaPart.get(name)?.data);
  return {
    params: fromNamedLeaves(params, toArrays(p)),
    state: fromNamedLeaves(state as unknown as Tree, toArrays(s)) as unknown as LeafState[],
    step: Number(stepText),
    config,
    ...(emaPart.size > 0 && leaves.length > 0 ? { ema: ema as Float32Array[] } : {}),
  };
}
