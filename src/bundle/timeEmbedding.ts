/**
 * `transformer.time_embedding: "auto"`: the tensor where a denoiser forms its time embedding,
 * found from the graph, so that a user need not look it up in Netron. The time embedding is where
 * all of the time's influence passes before it meets the latent or the condition: among the
 * tensors computed from the time input alone (and constants), the last one, in the graph's order,
 * that every such tensor read together with another input descends from, of shape [batch, W]
 * (W ≥ 2). In a DiT that is the output of the timestep MLP, before the blocks' adaLN layers branch
 * off it; in a UNet, the embedding before each block's projection.
 */
import { makeJaxpr } from "@jax-js/jax";
import { ConfigError } from "../config/schema.ts";
import { avalSpec, type ElemType } from "../executor/lower.ts";
import type { ImportedOnnx } from "../onnx/graph.ts";
import type { OnnxGraph } from "../onnx/reader.ts";

/** The time-only tensors every time-only input of a mixing node descends from, in graph order. */
export function timeEmbeddingCandidates(graph: OnnxGraph, timeInput: string): string[] {
  const inputs = new Set(graph.inputs.map((i) => i.name)), inits = new Set(graph.initializers.map((t) => t.name));
  // which graph inputs each tensor depends on: "time only" = exactly the time input
  const timeOnly = new Set<string>([timeInput]), other = new Set<string>([...inputs].filter((n) => n !== timeInput && !inits.has(n)));
  const parents = new Map<string, string[]>();
  const frontier = new Set<string>();
  for (const n of graph.nodes) {
    const ins = n.inputs.filter((x) => x !== "");
    const fromTime = ins.filter((x) => timeOnly.has(x)), mixes = ins.some((x) => other.has(x));
    for (const o of n.outputs.filter(Boolean)) {
      if (mixes) other.add(o);
      else if (fromTime.length) {
        timeOnly.add(o);
        parents.set(o, fromTime);
      }
    }
    if (mixes) fromTime.forEach((x) => frontier.add(x));
  }
  if (frontier.size === 0) return [];
  // the time-only ancestors (and itself) of each frontier tensor; the candidates lie in all of them
  const ancestors = (t: string): Set<string> => {
    const seen = new Set<string>(), stack = [t];
    while (stack.length) {
      const x = stack.pop()!;
      if (seen.has(x)) continue;
      seen.add(x);
      stack.push(...(parents.get(x) ?? []));
    }
    return seen;
  };
  const sets = [...frontier].map(ancestors);
  const order = graph.nodes.flatMap((n) => n.outputs.filter(Boolean));
  return order.filter((t) => t !== timeInput && sets.every((s) => s.has(t)));
}

type Avals = readonly { readonly shape: readonly number[]; readonly dtype: ElemType }[];

/**
 * Shapes of the tensors `names` of `transformer` for inputs of shapes and types `avals` (traced
 * abstractly with its parameters: no computation).
 */
export function tensorShapes(transformer: ImportedOnnx, avals: Avals, names: readonly string[]): number[][] {
  const params = Object.keys(transformer.params);
  const f = (...xs: never[]) => transformer.apply(Object.fromEntries(params.map((n, i) => [n, xs[i]])), xs.slice(params.length), { tap: [...names] }).slice(transformer.outputs.length);
  const specs = [...params.map((n) => avalSpec(transformer.params[n].shape)), ...avals.map((a) => avalSpec(a.shape, a.dtype))];
  const traced = (makeJaxpr(f as never) as unknown as (...a: unknown[]) => { jaxpr: { jaxpr: { outs: { aval: { shape: number[] } }[] }; dispose(): void } })(...specs);
  const shapes = traced.jaxpr.jaxpr.outs.map((o) => o.aval.shape);
  traced.jaxpr.dispose();
  return shapes;
}

/** Width W of a time embedding of shape [1, W] at batch 1 (W ≥ 2), or undefined for another shape. */
export const embeddingWidth = (shape: readonly number[]): number | undefined => (shape.length === 2 && shape[0] === 1 && shape[1] >= 2 ? shape[1] : undefined);

/** The time embedding of `transformer` (see above) and its width; `avals`: its inputs at batch 1. */
export function findTimeEmbedding(graph: OnnxGraph, transformer: ImportedOnnx, timeInput: string, avals: Avals): { name: string; width: number } {
  const candidates = timeEmbeddingCandidates(graph, timeInput);
  const shapes = candidates.length ? tensorShapes(transformer, avals, candidates) : [];
  for (let i = candidates.length - 1; i >= 0; i--) {
    const width = embeddingWidth(shapes[i]);
    if (width !== undefined) return { name: candidates[i], width };
  }
  throw new ConfigError(`teacher.json key "transformer.time_embedding": "auto" found no tensor [batch, W] computed from the time input "${timeInput}" alone that all of its uses pass through; name the tensor (as Netron shows it) or leave time_embedding out`);
}
