/** The project's one thread knob, TBCM_THREADS (no side effects: safe to import anywhere). */
import { availableParallelism } from "node:os";

/**
 * Threads from TBCM_THREADS; when unset, `fallback`: 1 for jax-js's worker pool (its per-kernel
 * messaging costs more than it saves on the small models here, see bench/RESULTS.md), every core
 * for ONNX Runtime's intra-op pool.
 */
export function threadCount(setting: string | undefined = process.env.TBCM_THREADS, fallback = 1): number {
  if (setting === undefined || setting === "") return fallback;
  const n = Number(setting);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TBCM_THREADS=${setting} is not a positive integer; unset it for the default`);
  return n;
}

/** ONNX Runtime's intra-op threads: TBCM_THREADS, else every core. */
export const onnxThreadCount = () => threadCount(process.env.TBCM_THREADS, availableParallelism());
