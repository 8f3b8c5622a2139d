/**
 * `DistillProblem`: the one interface between a teacher and the distillation loop. Each teacher
 * kind (the analytic GMM in `src/gmm/`, the default text-to-image stack in `src/stack/`)
 * implements it; the loop knows nothing else of the teacher.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import type { Teacher } from "../method/guidance.ts";
import type { Student } from "../method/student.ts";
import type { Key } from "../numerics/random.ts";
import type { Tree } from "../numerics/tree.ts";

/** Keys of the evaluation streams of a run. */
export type EvalKeys = { curve: Key; eval: Key; sampling: Key };

/**
 * What the distillation loop needs from a teacher: its guided velocity, the prompts' conditions,
 * the student it starts from, real latents for the sCM baseline, and how to measure a student.
 */
export interface DistillProblem<P extends Tree = Tree> {
  /** Latent dimension d (flat latents [B, d]). */
  readonly dim: number;
  readonly teacher: Teacher;
  /** Number of training prompts; prompts are indices 0..n−1, −1 the empty prompt. */
  readonly promptCount: number;
  /** Condition rows of prompt indices (−1: the empty prompt). */
  conditions(prompts: readonly number[]): Array;
  readonly student: Student<P>;
  /** The student to start from (a teacher copy, or fresh). */
  initialStudent(k: Key): P;
  /** Written into the student file's metadata (`kind`). */
  readonly studentKind: string;
  /** Real data latents (z units) of the prompts, for the sCM baseline. */
  realLatents(k: Key, prompts: readonly number[]): Float32Array | Promise<Float32Array>;
  /** Scaled latent of an all-black image for the black filter (empty: no filter). */
  readonly blackLatent: Float32Array;
  /** Things the user should know about the input (e.g. unknown prompt words). */
  readonly warnings?: readonly string[];
  /** How many times this problem has loaded an image decoder; TBCM's training asserts it loads none. */
  decoderLoads(): number;
  /** The 1-step consistency error of a student against the teacher's ODE endpoints (params not consumed). */
  curve(params: P): Promise<number>;
  /** Final metrics of a student (params not consumed); may write grids into `outDir`. */
  evaluate(params: P, outDir: string, k: Key, say?: (line: string) => void): Promise<Record<string, number>>;
  dispose(): void;
}

/** A column [B, 1] from host values. */
export function column(values: ArrayLike<number>): Array {
  return np.array(Float32Array.from(values)).reshape([values.length, 1]);
}
