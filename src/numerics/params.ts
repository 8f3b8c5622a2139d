/**
 * Parameter trees in safetensors files: dotted leaf names (`blocks.0.fc1.w`) map to tensors.
 * `loadParams` checks a file against the tree a model expects; `loadParamTree` rebuilds the
 * tree from the names and shapes the file itself states (a student of a finished run).
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { type Tree, namedLeaves, fromNamedLeaves, toHost } from "./tree.ts";
import { type HostTensor, saveSafetensors, loadSafetensors, assertFinite } from "./safetensors.ts";

/** Host copies of a tree's leaves under `prefix` + their dotted names. Arrays are not consumed. */
export function hostTensors(t: Tree, prefix: string, into: Map<string, HostTensor>): void {
  for (const [name, a] of namedLeaves(t)) into.set(`${prefix}${name}`, { shape: a.shape.slice(), data: toHost(a) });
}

/** Saves parameters only (the distilled student), with metadata. Arrays are not consumed. */
export function saveParams(path: string, params: Tree, metadata: Record<string, string>): void {
  const tensors = new Map<string, HostTensor>();
  hostTensors(params, "", tensors);
  saveSafetensors(path, tensors, metadata);
}

/**
 * Checks on the host, before any array is made, that `tensors` (names without `prefix`) hold
 * exactly the leaves of `like` with its shapes. Errors are one line naming the file and the tensor.
 */
export function checkLeaves(path: string, like: Tree, tensors: Map<string, HostTensor>, prefix: string, what: string): void {
  const wanted = new Map(namedLeaves(like).map(([name, a]) => [name, a.shape]));
  const hint = "(was it written for another model config?)";
  for (const name of tensors.keys()) {
    if (!wanted.has(name)) throw new Error(`"${path}": unexpected ${what} tensor "${prefix}${name}" ${hint}`);
  }
  for (const [name, shape] of wanted) {
    const t = tensors.get(name);
    if (!t) throw new Error(`"${path}": missing ${what} tensor "${prefix}${name}" ${hint}`);
    if (t.shape.join("x") !== shape.join("x")) throw new Error(`"${path}": ${what} tensor "${prefix}${name}" has shape [${t.shape}], expected [${shape}] ${hint}`);
  }
}

export function toArrays(tensors: Map<string, HostTensor>): Map<string, Array> {
  const arrays = new Map<string, Array>();
  for (const [name, t] of tensors) arrays.set(name, np.array(t.data).reshape(t.shape));
  return arrays;
}

/**
 * Loads parameters shaped like `like` (not consumed): wrong names or shapes, and NaN/Inf values
 * (a teacher, VAE, evaluator, student or `student.init` file that would silently poison
 * everything downstream), are one-line errors naming the file and the tensor.
 */
export function loadParams<P extends Tree>(path: string, like: P): { params: P; metadata: Record<string, string> } {
  const { tensors, metadata } = loadSafetensors(path);
  assertFinite(tensors, path);
  checkLeaves(path, like, tensors, "", "parameter");
  return { params: fromNamedLeaves(like, toArrays(tensors)), metadata };
}

/**
 * Loads a parameter tree as the file states it: names split at dots into nested records, and
 * records whose keys are 0…n−1 into lists (how `namedLeaves` wrote them).
 */
export function loadParamTree(path: string): { params: Tree; metadata: Record<string, string> } {
  const { tensors, metadata } = loadSafetensors(path);
  assertFinite(tensors, path);
  const root: Record<string, unknown> = {};
  for (const [name, t] of tensors) {
    const parts = name.split(".");
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (next instanceof np.Array) throw new Error(`"${path}": tensor "${name}" lies under another tensor's name`);
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    const leaf = parts[parts.length - 1];
    if (leaf in node) throw new Error(`"${path}": tensor "${name}" lies over other tensors' names`);
    node[leaf] = np.array(t.data).reshape(t.shape);
  }
  const asLists = (node: unknown): Tree => {
    if (node instanceof np.Array) return node as Array;
    const entries = Object.entries(node as Record<string, unknown>);
    const isList = entries.length > 0 && entries.every(([k]) => /^\d+$/.test(k)) && entries.every((_, i) => i.toString() in (node as object));
    return isList ? entries.map((_, i) => asLists((node as Record<string, unknown>)[i])) : Object.fromEntries(entries.map(([k, v]) => [k, asLists(v)]));
  };
  return { params: asLists(root), metadata };
}
