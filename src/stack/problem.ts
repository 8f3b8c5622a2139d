/**
 * The default stack as a distillation problem (issue #4): the shipped DiT teacher with CFG, the
 * prompts of a prompt file encoded once by the shipped text encoder, the student = a teacher copy
 * with a zero-initialised guidance embedder and logvar head (spec §4). TBCM never loads the VAE:
 * its pairs come from the teacher's trajectories alone. The sCM baseline encodes the real
 * training images with the VAE once (cached latents) and draws images of each prompt's class.
 * Evaluation (after training) decodes with the VAE and measures FD, prompt accuracy and the
 * 1-step consistency error against the teacher's ODE endpoint from the same noise.
 */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { StackDistillConfig } from "../config/schema.ts";
import { ConfigError, guidanceSchedule, executorOf } from "../config/schema.ts";
import { foldIn, normal, uniform } from "../numerics/random.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import { inference, inChunks, type Inference } from "../executor/inference.ts";
import { type DitParams, ditFlow, withStudentHeads } from "../models/dit.ts";
import { vaeEncode, vaeDecode } from "../models/vae.ts";
import { flowToTrigVelocity } from "../method/flowToTrig.ts";
import { studentTimesteps } from "../method/sampler.ts";
import { unknownWords, hasKnownWord } from "../data/tokenizer.ts";
import { caption, captionLabel, CLASS_NAMES } from "../data/captions.ts";
import { writeSampleGrids } from "../eval/report.ts";
import type { DistillProblem, EvalKeys } from "../train/problem.ts";
import type { Student } from "../method/student.ts";
import { readPromptFile, quotePrompt } from "../data/prompts.ts";
import { STACK_STUDENT_KIND, ditStudent } from "./student.ts";
import { studentSampleLatents, curveInputs, renoiseStreams } from "../eval/studentSamples.ts";
import { relativeMse } from "../eval/distance.ts";
import { Evaluator, type ImageStatistics } from "../eval/evaluator.ts";
import { pairedDifferences, PAIRED_RESAMPLES } from "../eval/paired.ts";
import { type LoadedTeacher, type LoadedVae, loadTeacher, loadVae } from "./load.ts";
import { loadSplit, allPixels } from "./common.ts";
import { guidedEulerStep, eulerEndpoint, textEncoderProgram, encodeConditions } from "./pipeline.ts";
import { evalPrompts, referenceStatistics, EVAL_PROMPTS } from "./teacherReport.ts";
import { planReference } from "./evaluatorReference.ts";
import { requireFashionMnist } from "../data/fashionMnist.ts";
import { loadSafetensors } from "../numerics/safetensors.ts";

/** Flow-Euler steps of the teacher's ODE reference (the endpoint the 1-step student should hit). */
export const ODE_REFERENCE_STEPS = 32;

export async function stackDistillProblem(cfg: StackDistillConfig, keys: EvalKeys): Promise<DistillProblem<DitParams> & { warnings: string[] }> {
  const t = cfg.teacher;
  // every data need up front, before any work: the sCM baseline's training images, the evaluation's
  // test statistics and floor (shipped next to the evaluator, else from the data)
  if (cfg.method === "scm") requireFashionMnist(t.dataDir, ["train"], "the sCM baseline (method: scm)");
  const reference = planReference(t.evaluator, t.dataDir, cfg.seed, cfg.eval.samples);
  const prompts = readPromptFile(cfg.promptsFile || "prompts/train.txt");
  const teacher = loadTeacher(t.model);
  const { dit, text, tokenizer } = teacher;
  const tooLong = prompts.find((p) => p.split(/\s+/).length > text.maxWords);
  if (tooLong !== undefined) throw new ConfigError(`prompt ${quotePrompt(tooLong)} has more than ${text.maxWords} words, the text encoder's limit: shorten it`);
  const blank = prompts.find((p) => !hasKnownWord(tokenizer, p));
  if (blank !== undefined) throw new ConfigError(`prompt ${quotePrompt(blank)} in ${cfg.promptsFile || "prompts/train.txt"} has no word the text encoder knows: it would train on the empty prompt; remove or reword it`);
  const unknown = [...new Set(prompts.flatMap((p) => unknownWords(tokenizer, p)))];
  const warnings = unknown.length ? [`${unknown.length} word(s) of the prompt file are unknown to the text encoder and read as <unk>: ${unknown.slice(0, 10).join(", ")}`] : [];
  if (reference.warning) warnings.push(reference.warning);
  const d = teacher.latentDim;
  // conditions of every training prompt, then of "" (row P), computed once
  const textProgram = textEncoderProgram(teacher, executorOf(cfg));
  const condition = (ps: readonly string[]) => encodeConditions(textProgram, teacher, ps);
  const table = await condition([...prompts, ""]);
  const M = text.maxWords + 1, C = text.width + 1, row = M * C;
  const rows = (idx: readonly number[]) => {
    const out = new Float32Array(idx.length * row);
    idx.forEach((i, r) => { const j = i < 0 ? prompts.length : i; out.set(table.data.subarray(j * row, (j + 1) * row), r * row); });
    return out;
  };
  const conditions = (idx: readonly number[]) => np.array(rows(idx)).reshape([idx.length, M, C]);
  const hostConditions = (idx: readonly number[]): HostTensor => ({ data: rows(idx), shape: [idx.length, M, C] });

  const velocity = (u: Array, tt: Array, cond: Array) => flowToTrigVelocity((x, s) => {
    const [v, lv] = ditFlow(tree.ref(teacher.params.dit), dit, x, s, cond);
    lv.dispose();
    return v;
  }, u, tt);
  const student = ditStudent(dit);
  // TBCM's training must never load the VAE; the loop checks this count before and after.
  let vaeLoads = 0;
  const loadOwnVae = () => { vaeLoads++; return loadVae(t.vae); };

  // sCM baseline: cached latents of the real training images, grouped by class
  let byClass: Float32Array[][] | undefined;
  const promptClass = prompts.map((p) => captionLabel(p));
  if (cfg.method === "scm") {
    if (promptClass.some((c) => c < 0)) throw new ConfigError(`the sCM baseline needs each prompt to name a Fashion-MNIST class; "${prompts[promptClass.indexOf(-1)]}" names none`);
    const vae = loadOwnVae();
    const train = loadSplit(t.dataDir, "train");
    const enc = inference(executorOf(cfg), vae.params, (p, x) => vaeEncode(p, vae.config, x)[0].mul(vae.scale), "vae_encode");
    const [lat] = await inChunks(enc, [{ data: allPixels(train), shape: [train.count, 784] }], train.count, 1000);
    await enc.dispose();
    tree.dispose(vae.params);
    byClass = globalThis.Array.from({ length: 10 }, () => []);
    for (let i = 0; i < train.count; i++) byClass[train.labels[i]].push(lat.data.subarray(i * d, (i + 1) * d));
  }

  // the curve: fixed prompts and noises, teacher ODE endpoints computed once
  const curve = curveInputs(cfg, prompts.length, d, keys.curve);
  const curveCond = hostConditions(curve.prompts), curveUncond = hostConditions(curve.prompts.map(() => -1)); // built once
  let curveReference: Float32Array | undefined;
  const euler = guidedEulerStep(teacher, executorOf(cfg));
  const blackLatent = t.vae ? Float32Array.from(JSON.parse(loadSafetensors(t.vae).metadata.black_latent ?? "[]")) : new Float32Array(0);

  return {
    dim: d,
    teacher: velocity,
    promptCount: prompts.length,
    conditions,
    student,
    studentKind: STACK_STUDENT_KIND,
    warnings,
    blackLatent: cfg.blackLatent.length ? Float32Array.from(cfg.blackLatent) : blackLatent,
    initialStudent: (k) => withStudentHeads(k, tree.ref(teacher.params.dit), dit),
    decoderLoads: () => vaeLoads,
    async realLatents(k, idx) {
      const u = uniform(k, idx.length);
      const z = new Float32Array(idx.length * d);
      idx.forEach((p, r) => { const pool = byClass![promptClass[p]]; z.set(pool[Math.min(pool.length - 1, Math.floor(u[r] * pool.length))], r * d); });
      return z;
    },
    async curve(params) {
      curveReference ??= await eulerEndpoint(euler, curve.noise, curveCond, curveUncond, curve.w, ODE_REFERENCE_STEPS, { schedule: guidanceSchedule(cfg) });
      const one = await studentSampleLatents(executorOf(cfg), student, params, 1, curve.noise, curveCond, curve.w, keys.sampling, cfg.eval);
      return relativeMse(one, curveReference);
    },
    async evaluate(params, outDir, _k, say) {
      return evaluateStackStudent(cfg, { teacher, student, params, euler, condition, loadVae: loadOwnVae, outDir, keys, say });
    },
    dispose() {
      void textProgram.dispose();
      void euler.dispose();
      tree.dispose(teacher.params as never);
    },
  };
}

/** Grids show one row per class ("a photo of a <name>") and this many noises. */
const GRID_COLUMNS = 8;

/** FD and prompt accuracy of the student at 1/2/4 steps and of the teacher, the 1-step consistency error, grids. */
async function evaluateStackStudent(cfg: StackDistillConfig, o: {
  teacher: LoadedTeacher; student: Student<DitParams>; params: DitParams; euler: Inference;
  condition: (ps: readonly string[]) => Promise<HostTensor>; loadVae: () => LoadedVae; outDir: string; keys: EvalKeys; say?: (line: string) => void;
}): Promise<Record<string, number>> {
  const t = cfg.teacher;
  const n = cfg.eval.samples;
  const t0 = performance.now();
  const say = (what: string) => o.say?.(`evaluation: ${what} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const d = o.teacher.latentDim;
  const evaluator = await Evaluator.load(t.evaluator, executorOf(cfg));
  const vae = o.loadVae();
  const decode = inference(executorOf(cfg), vae.params, (p, z) => vaeDecode(p, vae.config, z.div(vae.scale)), "vae_decode");
  const pixelsOf = async (z: Float32Array) => {
    const m = z.length / d;
    const [x] = await inChunks(decode, [{ data: z, shape: [m, d] }], m, Math.min(m, 500));
    return x.data.map((v) => Math.min(1, Math.max(0, v)));
  };
  const { test, floor, floorSeed, floorSamples, warning } = await referenceStatistics(t.dataDir, cfg.seed, evaluator, n);
  if (warning) o.say?.(`warning: ${warning}`);
  const metrics: Record<string, number> = {
    fd_floor: floor, fd_floor_seed: floorSeed, fd_floor_samples: floorSamples, eval_samples: n, eval_guidance: cfg.eval.guidance, two_step_mid: cfg.eval.twoStepMid, renoise_eta: cfg.eval.eta,
    // 4-step angles after π/2 (eval.multi_step): the metrics say which sampler made the 4-step numbers
    ...Object.fromEntries(studentTimesteps(4, cfg.eval.twoStepMid, undefined, cfg.eval.multiStep).slice(1, 4).map((t, i) => [`four_step_angle_${i + 1}`, t])),
    guidance_interval_lo: cfg.guidanceInterval[0], guidance_interval_hi: cfg.guidanceInterval[1], guidance_ramp: cfg.guidanceRamp,
  };
  const measured = new Map<string, { statistics: ImageStatistics; fd: number }>();
  const measure = async (name: string, z: Float32Array, labels: readonly number[]) => {
    const statistics = await evaluator.statistics(await pixelsOf(z));
    const fd = statistics.frechetDistance(test);
    metrics[`fd_${name}`] = fd;
    metrics[`accuracy_${name}`] = statistics.accuracy(labels);
    measured.set(name, { statistics, fd });
  };
  const col = (m: number, v: number): HostTensor => ({ data: new Float32Array(m).fill(v), shape: [m, 1] });

  // metrics on the held-out eval prompts
  const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
  const cond = await o.condition(prompts), uncond = await o.condition(prompts.map(() => ""));
  const w = col(n, cfg.eval.guidance);
  const noise = normal(o.keys.eval, n * d);
  const renoise = renoiseStreams(o.keys.sampling); // one re-noising stream for every step count: 2 and 4 steps on the same draws
  const guided = { schedule: guidanceSchedule(cfg) };
  say(`the teacher, 16 steps, ${n} images`);
  await measure("teacher_16step", await eulerEndpoint(o.euler, noise, cond, uncond, w, 16, guided), labels);
  say(`the teacher's ODE endpoints (${ODE_REFERENCE_STEPS} steps) for the consistency error`);
  const ode = await eulerEndpoint(o.euler, noise, cond, uncond, w, ODE_REFERENCE_STEPS, guided);
  for (const steps of [1, 2, 4]) {
    say(`the student, ${steps} step${steps > 1 ? "s" : ""}`);
    const z = await studentSampleLatents(executorOf(cfg), o.student, o.params, steps, noise, cond, w, renoise.metrics, cfg.eval);
    await measure(`student_${steps}step`, z, labels);
    if (steps === 1) metrics.consistency_rel_mse_1step = relativeMse(z, ode);
  }
  metrics.fd_ratio_1step_vs_teacher = metrics.fd_student_1step / metrics.fd_teacher_16step;
  metrics.accuracy_ratio_1step_vs_teacher = metrics.accuracy_student_1step / metrics.accuracy_teacher_16step;
  say(`paired differences (${PAIRED_RESAMPLES} bootstrap resamples)`);
  Object.assign(metrics, pairedDifferences(measured, test, labels, evaluator.config.features, foldIn(o.keys.eval, 2)));

  say("sample grids");
  // grids: same prompts and noises for teacher and student
  const gridPrompts = CLASS_NAMES.flatMap((names) => globalThis.Array.from({ length: GRID_COLUMNS }, () => caption("a photo of a {}", names[0])));
  const m = gridPrompts.length;
  const gc = await o.condition(gridPrompts), gu = await o.condition(gridPrompts.map(() => ""));
  const gw = col(m, cfg.eval.guidance);
  const gnoise = normal(foldIn(o.keys.eval, 1), m * d);
  const teacherPx = await pixelsOf(await eulerEndpoint(o.euler, gnoise, gc, gu, gw, 16, guided));
  const studentPx = new Map<number, Float32Array>();
  for (const steps of [1, 2, 4]) {
    studentPx.set(steps, await pixelsOf(await studentSampleLatents(executorOf(cfg), o.student, o.params, steps, gnoise, gc, gw, renoise.grids, cfg.eval)));
  }
  writeSampleGrids(o.outDir, teacherPx, studentPx, { rows: CLASS_NAMES.length, cols: GRID_COLUMNS, height: 28, width: 28 });
  await decode.dispose();
  tree.dispose(vae.params);
  await evaluator.dispose();
  return metrics;
}
