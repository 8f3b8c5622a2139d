/**
 * Upper bounds on every size a config or a checkpoint may ask for, checked with a one-line error
 * before anything is allocated. They sit far above every shipped config and run (×10–×1000) and
 * far below what would exhaust a machine like the ones this runs on (2–16 cores, 16–128 GB):
 * without them `route.steps: 1e9` or a 10-million-number YAML list made V8 abort or allocate tens
 * of GB before the first line of output.
 */

/** Config files are a few KB; 1 MB still holds ≈ 100,000 listed numbers, and bounds what the YAML parser builds. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases (`*a`) the parser may expand: none of the shipped configs uses one; a "billion laughs" file needs thousands. */
export const MAX_YAML_ALIASES = 100;
/**
 * Training steps of any run (train.steps, pretrain.steps, warm-ups, log/eval/checkpoint periods) and
 * the largest step a checkpoint may carry: 10 million steps is months at this engine's fastest
 * step (≈ 0.1–0.5 s); the shipped runs take 1,400–6,000.
 */
export const MAX_STEPS = 10_000_000;
/** Any list of numbers (guidance, black_latent, betas, eps) and the total count of teacher.means. */
export const MAX_LIST = 100_000;
/** Teacher ODE steps of the route: each training step integrates them for every prompt (shipped: 16–40). */
export const MAX_ROUTE_STEPS = 1000;
/** Logit-normal route angles: |mean| and std of logit(s) (SD3: 0, 1); at 10 nearly every draw is at an end of the route. */
export const MAX_LOGIT_MEAN = 10;
export const MAX_LOGIT_STD = 10;
/** Endpoint regression weight: past this the consistency loss is a rounding error beside it. */
export const MAX_ENDPOINT_WEIGHT = 1e6;
/** Prompts per training step: each keeps a whole teacher trajectory in memory (shipped: 4–10). */
export const MAX_PROMPTS_PER_STEP = 4096;
/** Images or noises generated for one evaluation (shipped: 256–1,000; 100,000 images of 28×28 floats ≈ 300 MB). */
export const MAX_EVAL_SAMPLES = 100_000;
/** Noises of the consistency curve, evaluated at every eval step (shipped: 32). */
export const MAX_CURVE_NOISES = 4096;
/** ODE steps of the RK4 ground truth (shipped: 128) and random projections of sliced W2 (shipped: 64). */
export const MAX_ODE_STEPS = 100_000;
export const MAX_PROJECTIONS = 10_000;
/** The analytic teacher: its dimension (shipped 16), prompts (10), components (3), and their product (its means, float32). */
export const MAX_GMM_DIM = 4096;
export const MAX_GMM_PROMPTS = 10_000;
export const MAX_GMM_COMPONENTS = 1000;
export const MAX_GMM_MEANS = 10_000_000;
/** Widths and depths of the networks (shipped: widths 64–512, depths 2–4, ratios 2): a 4096-wide, 64-deep network is GBs. */
export const MAX_WIDTH = 4096;
export const MAX_DEPTH = 64;
export const MAX_RATIO = 16;
/** Batch of the supervised trainings (shipped: 128–256). */
export const MAX_BATCH = 65_536;
/** Seeds: a random key is a 32-bit integer (src/numerics/random.ts); a larger seed would alias a smaller one. */
export const MAX_SEED = 2 ** 32 - 1;
/** Words a text encoder's vocabulary holds (shipped: 60). */
export const MAX_VOCAB = 1_000_000;

/**
 * The sizes in a model config read from a file's metadata: every number a positive whole number
 * within these limits (a width of 12,000 in a damaged or hostile file would allocate gigabytes
 * before the weights are even compared with it). Strings (e.g. the attention kind) pass.
 */
export function checkModelSizes(path: string, name: string, c: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(c)) {
    if (typeof v === "string") continue;
    const most = /depth/i.test(k) ? MAX_DEPTH : /vocab/i.test(k) ? MAX_VOCAB : /ratio/i.test(k) ? MAX_RATIO : MAX_WIDTH;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > most) {
      throw new Error(`"${path}": metadata "${name}" has ${k} = ${JSON.stringify(v)}; expected a whole number from 1 to ${most} (a damaged file?)`);
    }
  }
  return c;
}
