/**
 * Parameter trees and jax-js's consume-on-use memory model. Every jax-js function takes
 * ownership of the arrays passed in; these helpers keep the bookkeeping at the edges
 * (train/, eval/, cli/) so that the method's equations need no `.dispose()`.
 */
import { numpy as np, tree, type Array } from "@jax-js/jax";

/** A nested record of arrays: model parameters, optimiser state. */
export type Tree = Array | Tree[] | { [name: string]: Tree };

/** `[name, leaf]` pairs with dotted names (`blocks.0.fc1.w`), in a stable order. */
export function namedLeaves(t: Tree, prefix = ""): [string, Array][] {
  if (t instanceof np.Array) return [[prefix, t]];
  const entries = globalThis.Array.isArray(t) ? t.map((v, i) => [String(i), v] as const) : Object.entries(t);
  return entries.flatMap(([k, v]) => namedLeaves(v, prefix ? `${prefix}.${k}` : k));
}

/**
 * Rebuilds a tree shaped like `like` from named leaves; a missing or extra name, or a shape that
 * differs from `like`'s, is an error naming it. `like`'s arrays are only read, not consumed.
 */
export function fromNamedLeaves<T extends Tree>(like: T, leaves: Map<string, Array>): T {
  const wanted = namedLeaves(like);
  const extra = [...leaves.keys()].filter((k) => !wanted.some(([n]) => n === k));
  if (extra.length > 0) throw new Error(`unexpected tensors: ${extra.slice(0, 5).join(", ")}`);
  const values = wanted.map(([name, ref]) => {
    const a = leaves.get(name);
    if (!a) throw new Error(`missing tensor "${name}"`);
    if (a.shape.join("x") !== ref.shape.join("x")) {
      throw new Error(`tensor "${name}" has shape [${a.shape}], expected [${ref.shape}]`);
    }
    return a;
  });
  return tree.unflatten(tree.structure(like), values) as T;
}

/** Number of scalars in a tree. */
export function parameterCount(t: Tree): number {
  return namedLeaves(t).reduce((n, [, a]) => n + a.size, 0);
}

/** A host copy of an array's values (does not consume it). */
export function toHost(a: Array): Float32Array {
  return a.ref.dataSync() as Float32Array;
}

/** A host copy of an array's values, consuming it. */
export function takeHost(a: Array): Float32Array {
  return a.dataSync() as Float32Array;
}
