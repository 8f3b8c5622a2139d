/**
 * A teacher bundle (any flow-matching denoiser given as ONNX files and prompt embeddings; README
 * "Distil your own teacher") as a distillation problem: the imported denoiser with its parameters
 * frozen, converted to TrigFlow as the stack's teacher is (`flowToTrigVelocity`); the prompt
 * file's conditions are rows of the bundle's embeddings table; the student is the teacher's own
 * graph (student.ts). TBCM never loads the bundle's VAE decoder; evaluation decodes sample grids
 * with it when the bundle has one.
 */
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { type BundleConfig, ConfigError, guidanceSchedule, type Executor, executorOf } from "../config/schema.ts";
import { foldIn, normal } from "../numerics/random.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import { inference, inChunks, type Inference } from "../executor/inference.ts";
import { flowToTrigVelocity } from "../method/flowToTrig.ts";
import { type GuidanceSchedule, type Teacher, GUIDE_EVERYWHERE, guidanceShare } from "../method/guidance.ts";
import { readPromptFile } from "../data/prompts.ts";
import { relativeMse } from "../eval/distance.ts";
import { latentFrechet } from "../eval/latentFrechet.ts";
import { writeSampleGrids } from "../eval/report.ts";
import type { DistillProblem, EvalKeys } from "../train/problem.ts";
import { type LoadedBundle, BUNDLE_ROWS, loadBundle, tableRows } from "./load.ts";
import { hasDecoder, loadBundleDecoder } from "./decoder.ts";
import { readManifest, isUnconditional } from "./manifest.ts";
import { type TeacherChecks, checkTeacher } from "./parity.ts";
import { studentSampleLatents, curveInputs, renoiseStreams } from "../eval/studentSamples.ts";
import { type BundleStudentParams, BUNDLE_STUDENT_KIND, bundleStudent, guidanceConditioned, initialBundleStudent } from "./student.ts";

/** Flow-Euler steps of the teacher's ODE reference (the endpoint the 1-step student should hit). */
export const ODE_REFERENCE_STEPS = 32;
/** Principal directions of the teacher's samples in which the latent FD is measured. */
const LATENT_FD_DIRECTIONS = 32;
/** Fewer evaluation samples than this (tests' tiny configs) report no latent FD. */
const MIN_LATENT_FD_SAMPLES = 16;

/** Columns (noises) of the sample grids; rows are prompts spread evenly over the prompt file. */
const GRID_COLUMNS = 8, GRID_ROWS = 8;

/**
 * The config a bundle distils with: the scales of teacher.json (all of them with a guidance
 * embedding; its default_guidance alone without), and its default_guidance for evaluation.
 */
export function bundleConfig(cfg: BundleConfig): BundleConfig {
  const m = readManifest(cfg.teacher.dir);
  const conditioned = m.transformer.timeEmbedding !== "" || m.transformer.inputs.guidance !== "";
  return { ...cfg, guidance: conditioned ? [...m.guidanceScales] : [m.defaultGuidance], eval: { ...cfg.eval, guidance: m.defaultGuidance } };
}

/** The prompts of a run: the prompt file's, or every prompt of the table but the empty one. */
export function bundlePrompts(cfg: BundleConfig, b: LoadedBundle): string[] {
  if (isUnconditional(b.manifest)) {
    if (cfg.promptsFile) throw new ConfigError(`config key "prompts_file": the teacher bundle "${b.dir}" is unconditional (teacher.json names no condition input), so it takes no prompts; set prompts_file: ""`);
    return [""];
  }
  const empty = b.manifest.promptEmbeddings.emptyPrompt;
  if (!cfg.promptsFile) return b.table.prompts.filter((p) => p !== empty);
  const prompts = readPromptFile(cfg.promptsFile);
  const missing = prompts.find((p) => !b.table.index.has(p));
  if (missing !== undefined) {
    throw new ConfigError(`prompt ${JSON.stringify(missing)} (${cfg.promptsFile}, line ${prompts.indexOf(missing) + 1}) is not in the bundle's embeddings table "${join(b.dir, b.manifest.promptEmbeddings.file)}" (${b.table.prompts.length} prompts): add its embedding to the table`);
  }
  return prompts;
}

/** Whether the teacher's guided velocity is one pass of the network: a guidance-distilled teacher's (the scale is an input) or an unconditional one's (nothing to guide). */
function onePass(b: LoadedBundle): boolean {
  return b.manifest.transformer.inputs.guidance !== "" || isUnconditional(b.manifest);
}

/** The teacher's guided flow-Euler step (cond and uncond as one batch; one pass for a guidance-distilled or unconditional teacher), per-sample w. */
export function eulerStepProgram(executor: Executor, b: LoadedBundle, params: Array[]): Inference {
  return inference(executor, params, (p, x, s, sNext, cond, uncond, w) => {
    if (onePass(b)) {
      uncond.dispose();
      const [v] = b.flow(p, x.ref, s.ref, cond, { guidance: w });
      return x.add(v.mul(sNext.sub(s)));
    }
    const [v] = b.flow(p, np.concatenate([x.ref, x.ref], 0), np.concatenate([s.ref, s.ref], 0), np.concatenate([cond, uncond], 0));
    const [vc, vu] = np.split(v, 2, 0);
    return x.add(vu.ref.add(w.mul(vc.sub(vu))).mul(sNext.sub(s)));
  }, "bundle_teacher_euler_step");
}

/** The flow ODE from noise (s = 1) to s = 0 in `steps` guided Euler steps (uniform in s); latents [B·d]. */
async function eulerEndpoint(step: Inference, noise: Float32Array, cond: HostTensor, uncond: HostTensor, w: HostTensor, steps: number, schedule: GuidanceSchedule = GUIDE_EVERYWHERE): Promise<Float32Array> {
  const B = cond.shape[0], d = noise.length / B;
  let x: HostTensor = { data: noise, shape: [B, d] };
  const col = (v: number) => ({ data: new Float32Array(B).fill(v), shape: [B, 1] });
  for (let i = 0; i < steps; i++) {
    const s = 1 - i / steps, sNext = 1 - (i + 1) / steps;
    const share = guidanceShare(s, schedule);
    const guided = share === 1 ? w : { data: w.data.map((v) => 1 + (v - 1) * share), shape: w.shape };
    [x] = await inChunks(step, [x, col(s), col(sNext), cond, uncond, guided], B, Math.min(B, 64));
  }
  return x.data;
}

/** The host condition rows of a run's prompts, by index: i is prompt i, −1 the empty prompt. */
export function promptConditions(b: LoadedBundle, prompts: readonly string[]): (idx: readonly number[]) => HostTensor {
  const emptyRow = b.table.index.get(b.manifest.promptEmbeddings.emptyPrompt)!;
  const promptRows = prompts.map((p) => b.table.index.get(p)!);
  return (idx) => ({ data: tableRows(b.table, idx.map((i) => (i < 0 ? emptyRow : promptRows[i]))), shape: [idx.length, ...b.table.shape] });
}

export async function bundleDistillProblem(config: BundleConfig, keys: EvalKeys): Promise<DistillProblem<BundleStudentParams>> {
  if (!config.teacher.dir) throw new ConfigError(`config key "teacher.dir": teacher kind onnx needs the bundle folder (teacher.json, transformer.onnx, prompt_embeddings.safetensors)`);
  if (config.method === "scm") throw new ConfigError(`config key "method": the sCM baseline needs real data latents, which a teacher bundle has none of; use method: tbcm`);
  const cfg = bundleConfig(config);
  const b = loadBundle(cfg.teacher.dir, cfg.executor);
  const m = b.manifest;
  const prompts = bundlePrompts(cfg, b);
  const d = b.dim;
  // prompt i's condition row; −1: the empty prompt's
  const hostConditions = promptConditions(b, prompts);
  const conditions = (idx: readonly number[]) => { const h = hostConditions(idx); return np.array(h.data).reshape([...h.shape]); };

  const conditioned = guidanceConditioned(b);
  const width = m.transformer.timeEmbedding ? b.timeEmbeddingWidth() : 0;
  const warnings = conditioned || isUnconditional(m) ? [] : [`teacher.json names no transformer.time_embedding (nor a guidance input): the student has no guidance input and is distilled at the one guidance scale ${m.defaultGuidance} (default_guidance)`];
  const teacherParams = b.paramList();
  const velocity = (u: Array, t: Array, cond: Array) => flowToTrigVelocity((x, s) => b.flow(tree.ref(teacherParams), x, s, cond)[0], u, t);
  // a guidance-distilled teacher guides itself: one pass with the scale at its guidance input (an unconditional one ignores it)
  const teacher: Teacher = onePass(b)
    ? { guided: (u, t, cond, w) => flowToTrigVelocity((x, s) => b.flow(tree.ref(teacherParams), x, s, cond, { guidance: w })[0], u, t) }
    : velocity;
  const student = bundleStudent(b);

  let decoderLoads = 0;
  const euler = eulerStepProgram(executorOf(cfg), b, teacherParams);
  let checks: TeacherChecks;
  try {
    checks = await checkTeacher(euler, b, cfg, prompts, hostConditions);
    warnings.push(...checks.warnings);
  } catch (e) {
    await euler.dispose();
    tree.dispose(teacherParams);
    throw e;
  }
  const schedule = guidanceSchedule(cfg);
  const curve = curveInputs(cfg, prompts.length, d, keys.curve);
  const curveCond = hostConditions(curve.prompts), curveUncond = hostConditions(curve.prompts.map(() => -1)); // built once
  let curveReference: Float32Array | undefined;

  return {
    dim: d,
    teacher,
    promptCount: prompts.length,
    conditions,
    student,
    studentKind: BUNDLE_STUDENT_KIND,
    warnings,
    blackLatent: cfg.blackLatent.length ? Float32Array.from(cfg.blackLatent) : Float32Array.from(m.blackLatent),
    initialStudent: (k) => initialBundleStudent(k, b, width),
    decoderLoads: () => decoderLoads,
    realLatents() {
      throw new ConfigError("a teacher bundle has no real data latents (the sCM baseline needs them)");
    },
    async curve(params) {
      curveReference ??= await eulerEndpoint(euler, curve.noise, curveCond, curveUncond, curve.w, ODE_REFERENCE_STEPS, schedule);
      const one = await studentSampleLatents(executorOf(cfg), student, params, 1, curve.noise, curveCond, curve.w, keys.sampling, cfg.eval, BUNDLE_ROWS);
      return relativeMse(one, curveReference);
    },
    async evaluate(params, outDir, _k, say) {
      const t0 = performance.now();
      const note = (what: string) => say?.(`evaluation: ${what} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      const n = cfg.eval.samples;
      const idx = globalThis.Array.from({ length: n }, (_, i) => i % prompts.length);
      const cond = hostConditions(idx), uncond = hostConditions(idx.map(() => -1));
      const w: HostTensor = { data: new Float32Array(n).fill(cfg.eval.guidance), shape: [n, 1] };
      const noise = normal(keys.eval, n * d);
      const renoise = renoiseStreams(keys.sampling); // one re-noising stream for every step count: 2 and 4 steps on the same draws
      note(`the teacher's ODE endpoints (${ODE_REFERENCE_STEPS} Euler steps), ${n} samples`);
      const ode = await eulerEndpoint(euler, noise, cond, uncond, w, ODE_REFERENCE_STEPS, schedule);
      // teacher_import_rel_error: tbcm's teacher against onnxruntime on the teacher's file (parity.ts; NaN: not checked);
      // teacher_noise_spread: how far its velocity at pure noise is from a flow velocity's (parity.ts noiseSpread)
      const metrics: Record<string, number> = { eval_samples: n, eval_guidance: cfg.eval.guidance, guidance_conditioned: conditioned ? 1 : 0, teacher_import_rel_error: checks.importError, teacher_noise_spread: checks.noiseSpread };
      const samples: Float32Array[] = [];
      for (const steps of [1, 2, 4]) {
        note(`the student, ${steps} step${steps > 1 ? "s" : ""}`);
        const z = await studentSampleLatents(executorOf(cfg), student, params, steps, noise, cond, w, renoise.metrics, cfg.eval, BUNDLE_ROWS);
        metrics[`consistency_rel_mse_${steps}step`] = relativeMse(z, ode);
        samples.push(z);
      }
      // A bundle carries no image evaluator: how far the student's samples are from the teacher's (the same noises)
      // as distributions, in the teacher samples' leading latent directions. Lower is better; compare at equal eval.samples.
      if (n >= MIN_LATENT_FD_SAMPLES) {
        const fds = latentFrechet(ode, n, d, samples, LATENT_FD_DIRECTIONS);
        [1, 2, 4].forEach((steps, i) => (metrics[`fd_latent_${steps}step_vs_teacher`] = fds[i]));
      }
      if (hasDecoder(b)) {
        note("sample grids");
        decoderLoads++;
        const decoder = loadBundleDecoder(b, executorOf(cfg));
        const rowsN = isUnconditional(m) ? GRID_ROWS : Math.min(GRID_ROWS, prompts.length), gm = rowsN * GRID_COLUMNS;
        // row r shows prompt ⌊r·P/rows⌋: a prompt file sorted by subject shows each subject once
        const gidx = globalThis.Array.from({ length: gm }, (_, i) => Math.floor((Math.floor(i / GRID_COLUMNS) * prompts.length) / rowsN));
        const gc = hostConditions(gidx), gu = hostConditions(gidx.map(() => -1));
        const gw: HostTensor = { data: new Float32Array(gm).fill(cfg.eval.guidance), shape: [gm, 1] };
        const gnoise = normal(foldIn(keys.eval, 1), gm * d);
        try {
          const teacher = await decoder.decode(await eulerEndpoint(euler, gnoise, gc, gu, gw, 16, schedule), gm);
          const studentPx = new Map<number, Float32Array>();
          for (const steps of [1, 2, 4]) {
            const z = await studentSampleLatents(executorOf(cfg), student, params, steps, gnoise, gc, gw, renoise.grids, cfg.eval, BUNDLE_ROWS);
            studentPx.set(steps, (await decoder.decode(z, gm)).pixels);
          }
          const { height, width, channels } = teacher;
          writeSampleGrids(outDir, teacher.pixels, studentPx, { rows: rowsN, cols: GRID_COLUMNS, height, width, channels });
        } finally {
          await decoder.dispose();
        }
      }
      return metrics;
    },
    dispose() {
      void euler.dispose();
      tree.dispose(teacherParams);
    },
  };
}
