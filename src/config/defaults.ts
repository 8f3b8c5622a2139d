/**
 * Constants of the method, each with its source. Configs override the tunable ones; nothing
 * else in the code base writes these numbers as literals.
 */

/** σ_d, the data standard deviation of TrigFlow (sCM, Lu & Song 2024; spec §2). */
export const SIGMA_D = 0.5;

/** T of the teacher's discrete schedule from which the route is built (spec §3). */
export const ROUTE_TRAIN_STEPS = 1000;

/** Route of the reference: shift 2.5, 16 steps (spec §3). */
export const ROUTE_SHIFT = 2.5;
export const ROUTE_STEPS = 16;

/** Logit-normal trajectory angles (`route.sampling: logit_normal`): logit(s) ~ N(0, 1), SD3's default (Esser et al. 2024). */
export const LOGIT_NORMAL_MEAN = 0;
export const LOGIT_NORMAL_STD = 1;

/** Guidance scales the reference draws per prompt (spec §3). */
export const GUIDANCE_SCALES = [4, 4.5, 5] as const;

/** Scale of the guidance fed to the student's guidance embedder (spec §4). */
export const GUIDANCE_EMBED_SCALE = 0.1;

/** The constant added to ‖g‖ in tangent normalisation (spec §4). */
export const TANGENT_NORM_EPS = 0.1;

/** Tangent-ratio schedule of the reference: warmup, calm-down start and length, final r (spec §4). */
export const TANGENT_WARMUP = 4000;
export const CALM_START = 15000;
export const CALM_STEPS = 2000;
export const R_FINAL = 0.75;

/** Global gradient-norm clip of the reference (spec §4). */
export const GRAD_CLIP = 0.1;

/** CAME hyper-parameters of the reference (spec §4; Luo et al. 2023). */
export const CAME_BETAS = [0.9, 0.999, 0.9999] as const;
export const CAME_EPS = [1e-30, 1e-16] as const;
export const CAME_CLIP_THRESHOLD = 1.0;

/** sCM baseline time distribution: τ ~ N(P_mean, P_std²), t = atan(e^τ/σ_d) (spec §5). */
export const SCM_P_MEAN = 0.2;
export const SCM_P_STD = 1.6;

/** Middle angle of 2-step sampling in the reference validation (spec §6). */
export const TWO_STEP_MID = 1.0;

/**
 * Angles of n ≥ 3 student steps: `shifted` = the teacher's shifted schedule (spec §6), `from_mid` =
 * the 2-step list's middle angle, then evenly down to 0, `tail` = the middle angle, then
 * geometrically down to `TAIL_END` (see `studentTimesteps`).
 */
export const MULTI_STEP_RULES = ["shifted", "from_mid", "tail"] as const;
export type MultiStepRule = (typeof MULTI_STEP_RULES)[number];

/** The last re-noising angle of the `tail` rule: low enough that a re-noising there keeps the image's class. */
export const TAIL_END = 0.1;

/** Share of fresh noise when the student sampler re-noises (spec §6: all fresh, η = 1). */
export const RENOISE_ETA = 1.0;

/** Attention of the stack's transformers: softmax, or ReLU linear attention (Sana). */
export const ATTENTION_KINDS = ["softmax", "linear"] as const;
export type AttentionKind = (typeof ATTENTION_KINDS)[number];
