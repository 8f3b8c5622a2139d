/**
 * Checkpoints: parameters, optimiser state, the step and the resolved config in one
 * safetensors file, written atomically (temporary file + rename) so a killed run never leaves
 * a half-written checkpoint.
 */
import { existsSync } from "node:fs";
import { numpy as np, type Array } from "@jax-js/jax";
import { type Tree, namedLeaves, fromNamedLeaves } from "../numerics/tree.ts";
import { type HostTensor, saveSafetensors, loadSafetensors } from "../numerics/safetensors.ts";
import { hostTensors } from "../numerics/params.ts";
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

/** Loads a checkpoint into trees shaped like `params` and `state` (neither is consumed). */
export function loadCheckpoint<P extends Tree>(path: string, params: P, state: LeafState[]): Checkpoint<P> {
  if (!existsSync(path)) throw new Error(`no checkpoint at "${path}": nothing to resume (run without --resume)`);
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata.format !== "tbcm-checkpoint-1") throw new Error(`"${path}" is not a tbcm checkpoint`);
  const part = (prefix: string) => {
    const m = new Map<string, Array>();
    for (const [name, t] of tensors) if (name.startsWith(prefix)) m.set(name.slice(prefix.length), np.array(t.data).reshape(t.shape));
    return m;
  };
  const leaves = namedLeaves(params);
  const ema = leaves.map(([name, a]) => {
    const t = tensors.get(`ema.${name}`);
    if (t && t.data.length !== a.size) throw new Error(`"${path}": the parameter average of ${name} has ${t.data.length} values, not ${a.size}`);
    return t?.data;
  });
  const complete = ema.every((e) => e !== undefined);
  if (!complete && ema.some((e) => e !== undefined)) throw new Error(`"${path}": the parameter average is incomplete`);
  return {
    params: fromNamedLeaves(params, part("params.")),
    state: fromNamedLeaves(state as unknown as Tree, part("opt.")) as unknown as LeafState[],
    step: Number(metadata.step),
    config: metadata.config,
    ...(complete && leaves.length > 0 ? { ema: ema as Float32Array[] } : {}),
  };
}
