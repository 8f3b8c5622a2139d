/**
 * The student of a teacher bundle: the teacher's own imported graph (every floating initializer
 * trainable, started as the teacher's values) in TrigFlow form (spec §2/§4), with
 * - a guidance embedding (Sana-Sprint): when teacher.json names the tensor where the time
 *   embedding is formed, an embedder of 0.1·w (zero-initialised output) is added there, and the
 *   logvar head (zero-initialised) is a linear map of that embedding, as in sCM and the stack's
 *   student; the student is distilled over all guidance_scales;
 * - otherwise a logvar head that is a small network of t alone (zero-initialised output), and the
 *   student is distilled at one fixed guidance scale (teacher.json's default_guidance).
 * Parameters are lists (`graph` in the denoiser's initializer order), so that student files
 * keep names free of the graph's own dots and slashes.
 */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { type Key, foldIn } from "../numerics/random.ts";
import { type Linear, type Embedder, initLinear, linear, initEmbedder, embed, TIME_FEATURES, timeFeatures, guidanceFeatures } from "../models/layers.ts";
import { type Student, trigflowStudent } from "../method/student.ts";
import type { LoadedBundle } from "./load.ts";

/** The `kind` metadata of this student's files. */
export const BUNDLE_STUDENT_KIND = "tbcm-student-onnx";

/** Hidden width of the t-only logvar head (no time-embedding hook). */
const LOGVAR_HIDDEN = 64;

export type BundleStudentParams = {
  /** The denoiser's parameters, in `LoadedBundle.paramNames` order. */
  graph: Array[];
  /** Guidance embedder (only with a time-embedding hook). */
  guidance?: Embedder;
  /** logvar head: Linear of the time embedding (hook), or a Linear → SiLU → Linear of t's features. */
  logvar: Linear | { fc1: Linear; fc2: Linear };
};

/** Whether the student has a guidance embedding (teacher.json names `transformer.time_embedding`). */
export function guidanceConditioned(b: LoadedBundle): boolean {
  return b.manifest.transformer.timeEmbedding !== "";
}

/**
 * The student a run starts from: the teacher's parameters, plus zero-output heads (the same keys
 * and shapes as the stack's `withStudentHeads`, so that a bundle of the shipped teacher starts
 * exactly where the stack's student does). `embeddingWidth`: the time embedding's width W.
 */
export function initialBundleStudent(k: Key, b: LoadedBundle, embeddingWidth: number): BundleStudentParams {
  if (guidanceConditioned(b)) {
    return { graph: b.paramList(), guidance: initEmbedder(foldIn(k, 1), TIME_FEATURES, embeddingWidth, 0), logvar: initLinear(foldIn(k, 2), embeddingWidth, 1, 0) };
  }
  return { graph: b.paramList(), logvar: { fc1: initLinear(foldIn(k, 2), TIME_FEATURES, LOGVAR_HIDDEN), fc2: initLinear(foldIn(k, 3), LOGVAR_HIDDEN, 1, 0) } };
}

/** The student as a flow network with guidance input and logvar: (x_s [B, d], s, cond, w [B, 1]) → [v, logvar [B, 1]]. */
export function bundleFlowStudent(b: LoadedBundle) {
  return (p: BundleStudentParams, xFlow: Array, s: Array, cond: Array, w: Array): [Array, Array] => {
    const B = xFlow.shape[0];
    if (p.guidance) {
      let g = embed(p.guidance, guidanceFeatures(w));
      if (g.shape[0] !== B) g = np.broadcastTo(g, [B, g.shape[1]]);
      const [v, temb] = b.flow(p.graph, xFlow, s, cond, { addTimeEmbedding: g, tapTimeEmbedding: true });
      return [v, linear(p.logvar as Linear, temb)];
    }
    w.dispose();
    const head = p.logvar as { fc1: Linear; fc2: Linear };
    let logvar = linear(head.fc2, nn.silu(linear(head.fc1, timeFeatures(s.ref))));
    if (logvar.shape[0] !== B) logvar = np.broadcastTo(logvar, [B, 1]);
    const [v] = b.flow(p.graph, xFlow, s, cond);
    return [v, logvar];
  };
}

export function bundleStudent(b: LoadedBundle): Student<BundleStudentParams> {
  return trigflowStudent(bundleFlowStudent(b));
}

