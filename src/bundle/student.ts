/**
 * The student of a teacher bundle: the teacher's own imported graph (every floating initializer
 * trainable, started as the teacher's values) in TrigFlow form (spec §2/§4), with
 * - a guidance embedding (Sana-Sprint): when teacher.json names the tensor where the time
 *   embedding is formed, an embedder of 0.1·w (zero-initialised output) is added there, and the
 *   logvar head (zero-initialised) is a linear map of that embedding, as in sCM and the stack's
 *   student; the student is distilled over all guidance_scales;
 * - for a guidance-distilled teacher (teacher.json names its guidance input), that input: the
 *   student takes the scale where the teacher does, and is distilled over all guidance_scales;
 * - otherwise a logvar head that is a small network of t alone (zero-initialised output), and the
 *   student is distilled at one fixed guidance scale (teacher.json's default_guidance).
 * The logvar head is a linear map of the time embedding wherever teacher.json names it.
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

/** Whether the student takes a guidance scale: its own guidance input (a guidance-distilled teacher's), or an embedding added to the time embedding. */
export function guidanceConditioned(b: LoadedBundle): boolean {
  return b.manifest.transformer.inputs.guidance !== "" || b.manifest.transformer.timeEmbedding !== "";
}

/** Whether the student gets a guidance embedding of its own (a time-embedding hook, and no guidance input of the teacher's). */
function needsGuidanceEmbedding(b: LoadedBundle): boolean {
  return b.manifest.transformer.inputs.guidance === "" && b.manifest.transformer.timeEmbedding !== "";
}

/**
 * The student a run starts from: the teacher's parameters, plus zero-output heads (the same keys
 * and shapes as the stack's `withStudentHeads`, so that a bundle of the shipped teacher starts
 * exactly where the stack's student does). `embeddingWidth`: the time embedding's width W.
 */
export function initialBundleStudent(k: Key, b: LoadedBundle, embeddingWidth: number): BundleStudentParams {
  const logvar = b.manifest.transformer.timeEmbedding !== "" ? initLinear(foldIn(k, 2), embeddingWidth, 1, 0)
    : { fc1: initLinear(foldIn(k, 2), TIME_FEATURES, LOGVAR_HIDDEN), fc2: initLinear(foldIn(k, 3), LOGVAR_HIDDEN, 1, 0) };
  return { graph: b.paramList(), ...(needsGuidanceEmbedding(b) ? { guidance: initEmbedder(foldIn(k, 1), TIME_FEATURES, embeddingWidth, 0) } : {}), logvar };
}

/**
 * The student as a flow network with guidance input and logvar: (x_s [B, d], s, cond, w [B, 1]) →
 * [v, logvar [B, 1]]; `constants`: the constant inputs' values as the teacher takes them (default:
 * the table's).
 */
export function bundleFlowStudent(b: LoadedBundle) {
  const takesGuidance = b.manifest.transformer.inputs.guidance !== "";
  return (p: BundleStudentParams, xFlow: Array, s: Array, cond: Array, w: Array, constants?: readonly Array[]): [Array, Array] => {
    const B = xFlow.shape[0];
    // the scale: into the teacher's own guidance input, or as an embedding added to the time embedding
    let add: Array | undefined, guidance: Array | undefined;
    if (takesGuidance) guidance = w;
    else if (p.guidance) {
      add = embed(p.guidance, guidanceFeatures(w));
      if (add.shape[0] !== B) add = np.broadcastTo(add, [B, add.shape[1]]);
    } else w.dispose();
    if ("fc1" in p.logvar) {
      let logvar = linear(p.logvar.fc2, nn.silu(linear(p.logvar.fc1, timeFeatures(s.ref))));
      if (logvar.shape[0] !== B) logvar = np.broadcastTo(logvar, [B, 1]);
      const [v] = b.flow(p.graph, xFlow, s, cond, { addTimeEmbedding: add, guidance, constants });
      return [v, logvar];
    }
    const [v, temb] = b.flow(p.graph, xFlow, s, cond, { addTimeEmbedding: add, tapTimeEmbedding: true, guidance, constants });
    return [v, linear(p.logvar, temb)];
  };
}

export function bundleStudent(b: LoadedBundle): Student<BundleStudentParams> {
  return trigflowStudent(bundleFlowStudent(b));
}

