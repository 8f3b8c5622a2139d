/**
 * Inference programs over fixed weights: a jax-js function of (weights, inputs) compiled with the
 * weights closed over (graph constants for ONNX Runtime), run on the configured executor, fed
 * and answered with host arrays. Used for encoding, decoding, sampling and evaluation.
 */
import { numpy as np, jit, tree, type Array } from "@jax-js/jax";
import type { Tree } from "../numerics/tree.ts";
import { type Executor, executorParts } from "../config/schema.ts";
import { OnnxFunction, type HostTensor } from "./onnxRun.ts";

export type Inference = {
  run(inputs: HostTensor[]): Promise<HostTensor[]>;
  dispose(): Promise<void>;
  /** The most rows `inChunks` gives one call (jax-js: its wasm memory is capped at 4 GiB). */
  readonly maxRows?: number;
};

/**
 * jax-js's compiled programs hold every intermediate of a call at once in one wasm memory of at
 * most 4 GiB: a 4-step student sample of 250 rows (≈ 3 MB per row and model pass) overran it.
 */
const JAX_MAX_ROWS = 100;

/** `f(weights, ...inputs)` returns one array or a list. `weights` stay owned by the caller and must outlive the program. */
export function inference<W extends Tree>(executor: Executor, weights: W, f: (w: W, ...inputs: Array[]) => Array | Array[], name = "inference"): Inference {
  const { kind, device } = executorParts(executor);
  const g = (...xs: Array[]) => {
    const out = f(tree.ref(weights), ...xs);
    return globalThis.Array.isArray(out) ? out : [out];
  };
  if (kind === "onnx") {
    const fn = new OnnxFunction(g as never, { name, device });
    return { run: (inputs) => fn.run(inputs), dispose: () => fn.dispose() };
  }
  const jitted = jit(g);
  return {
    async run(inputs) {
      const outs = jitted(...inputs.map((x) => np.array(x.data).reshape([...x.shape])));
      return Promise.all(outs.map(async (o) => ({ shape: [...o.shape], data: (await o.data()) as Float32Array })));
    },
    async dispose() { jitted.dispose(); },
    maxRows: JAX_MAX_ROWS,
  };
}

/** Runs `program` over `count` rows in chunks of `chunk`, slicing each row-major input along its first axis. */
export async function inChunks(program: Inference, inputs: HostTensor[], count: number, chunk: number): Promise<HostTensor[]> {
  chunk = Math.min(chunk, program.maxRows ?? chunk);
  const parts: HostTensor[][] = [];
  for (let at = 0; at < count; at += chunk) {
    const n = Math.min(chunk, count - at);
    const slice = inputs.map((x) => {
      const row = x.data.length / x.shape[0];
      // the last chunk is padded to `chunk` rows so that one compiled program serves every chunk
      const data = new Float32Array(chunk * row);
      data.set(x.data.subarray(at * row, (at + n) * row));
      return { data, shape: [chunk, ...x.shape.slice(1)] };
    });
    const out = await program.run(slice);
    parts.push(out.map((o) => {
      const row = o.data.length / o.shape[0];
      return { data: o.data.slice(0, n * row), shape: [n, ...o.shape.slice(1)] };
    }));
  }
  return parts[0].map((_, j) => {
    const rows = parts.reduce((s, p) => s + p[j].shape[0], 0);
    const data = new Float32Array(parts.reduce((s, p) => s + p[j].data.length, 0));
    let off = 0;
    for (const p of parts) { data.set(p[j].data, off); off += p[j].data.length; }
    return { data, shape: [rows, ...parts[0][j].shape.slice(1)] };
  });
}
