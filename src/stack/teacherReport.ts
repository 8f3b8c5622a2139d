/**
 * The teacher's evaluation for its model card: on the held-out eval prompts, FD (evaluator
 * features) against the test split and prompt accuracy, at 4/8/16/32 flow-Euler steps and on the
 * spec's 16-step TrigFlow route, CFG 4.5; the real-vs-real floor beside them; a sample grid per
 * class.
 */
import { join } from "node:path";
import type { StackConfig } from "../config/stack.ts";
import { executorOf } from "../config/schema.ts";
import { key, foldIn } from "../numerics/random.ts";
import { readPromptFile } from "../data/prompts.ts";
import { caption, captionLabel, CLASS_NAMES } from "../data/captions.ts";
import { FASHION_CLASSES } from "../data/fashionMnist.ts";
import { writeImageGrid } from "../data/png.ts";
import { Evaluator, type ImageStatistics } from "../eval/evaluator.ts";
import { StackPipeline, type TeacherSampler } from "./pipeline.ts";
import { type GuidanceSchedule, GUIDE_EVERYWHERE } from "../method/guidance.ts";
import { resolveReference } from "./evaluatorReference.ts";
import { FD_SAMPLES } from "./evaluator.ts";

export const EVAL_PROMPTS = "prompts/eval.txt";
export const TEACHER_GUIDANCE = 4.5;
/**
 * Where the shipped teacher's guidance acts by default. Guided everywhere, CFG 4.5 over-saturates
 * and collapses diversity (FD 27.7× the floor); guidance limited to the low-noise part keeps
 * prompt accuracy and restores diversity (bench/RESULTS.md §10). The edge is smooth so that the
 * same schedule can be distilled.
 */
export const TEACHER_GUIDANCE_SCHEDULE: GuidanceSchedule = { interval: [0, 0.5], ramp: 0.1 };

/** "[0, 0.5] (edge ramp 0.1)" */
export function describeSchedule(g: GuidanceSchedule): string {
  return `[${g.interval.join(", ")}]${g.ramp > 0 ? ` (logistic edge of width ${g.ramp})` : ""}`;
}

/** `n` prompts cycling through a prompt file, with the class each asks for. */
export function evalPrompts(path: string, n: number): { prompts: string[]; labels: number[] } {
  const all = readPromptFile(path);
  const prompts = globalThis.Array.from({ length: n }, (_, i) => all[i % all.length]);
  return { prompts, labels: prompts.map(captionLabel) };
}

/**
 * Real-data statistics the evaluations compare with: the test split, and the floor (a train subset
 * of the same size); from the evaluator's shipped reference file where it has them, else from the
 * data (src/stack/evaluatorReference.ts). `floorSeed` / `floorSamples` say which floor it is.
 */
export async function referenceStatistics(dataDir: string, seed: number, evaluator: Evaluator, n: number) {
  const { test, floor, plan } = await resolveReference(evaluator.path, evaluator, dataDir, seed, n);
  return { test, floor, floorSeed: plan.floorSeed, floorSamples: plan.floorSamples, warning: plan.warning };
}

export async function teacherReport(cfg: StackConfig, say: (l: string) => void, n = Number(process.env.TBCM_EVAL_SAMPLES) || FD_SAMPLES) {
  const pipe = StackPipeline.load({ teacher: join(cfg.modelsDir, "teacher.safetensors"), vae: join(cfg.modelsDir, "vae.safetensors") }, executorOf(cfg));
  const evaluator = await Evaluator.load(join(cfg.modelsDir, "evaluator.safetensors"), executorOf(cfg));
  const { test, floor, floorSeed, floorSamples, warning } = await referenceStatistics(cfg.dataDir, cfg.seed, evaluator, n);
  if (warning) say(`warning: ${warning}`);
  const { prompts, labels } = evalPrompts(EVAL_PROMPTS, n);
  const k = foldIn(key(cfg.seed), 77);
  const table: Record<string, number> = {
    fd_floor: floor, eval_samples: n, guidance: TEACHER_GUIDANCE,
    guidance_interval_lo: TEACHER_GUIDANCE_SCHEDULE.interval[0], guidance_interval_hi: TEACHER_GUIDANCE_SCHEDULE.interval[1], guidance_ramp: TEACHER_GUIDANCE_SCHEDULE.ramp,
  };
  const runs: [TeacherSampler, number][] = [["euler", 4], ["euler", 8], ["euler", 16], ["euler", 32], ["trigflow", 16]];
  // guided everywhere (plain CFG, names like fd_euler_16) and inside the default interval (…_interval)
  for (const [suffix, schedule] of [["", GUIDE_EVERYWHERE], ["_interval", TEACHER_GUIDANCE_SCHEDULE]] as const) {
    for (const [sampler, steps] of runs) {
      const t0 = performance.now();
      const latents = await pipe.sampleTeacher(prompts, { steps, guidance: TEACHER_GUIDANCE, k, sampler, schedule });
      const stats: ImageStatistics = await evaluator.statistics(await pipe.decode(latents));
      const name = `${sampler}_${steps}${suffix}`;
      table[`fd_${name}`] = stats.frechetDistance(test);
      table[`accuracy_${name}`] = stats.accuracy(labels);
      table[`fd_ratio_${name}`] = table[`fd_${name}`] / floor;
      say(`teacher ${name}: FD ${table[`fd_${name}`].toFixed(3)} (floor ${floor.toFixed(3)}), prompt accuracy ${table[`accuracy_${name}`].toFixed(3)}  ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  // a grid per class: one row per class, 8 samples (16 Euler steps, CFG 4.5), with and without the interval
  const cols = 8;
  const gridPrompts = CLASS_NAMES.flatMap((names) => globalThis.Array.from({ length: cols }, () => caption("a photo of a {}", names[0])));
  for (const [file, schedule] of [["teacher-grid.png", TEACHER_GUIDANCE_SCHEDULE], ["teacher-grid-everywhere.png", GUIDE_EVERYWHERE]] as const) {
    const grid = await pipe.decode(await pipe.sampleTeacher(gridPrompts, { steps: 16, guidance: TEACHER_GUIDANCE, k: foldIn(k, 1), schedule }));
    writeImageGrid(join(cfg.modelsDir, file), grid, { rows: FASHION_CLASSES.length, cols, height: 28, width: 28 });
  }
  await evaluator.dispose();
  await pipe.dispose();
  return {
    table,
    images: ["teacher-grid.png", "teacher-grid-everywhere.png"],
    notes: [
      `Rows of the grids, top to bottom: ${FASHION_CLASSES.join(", ")} ("a photo of a <name>", 16 Euler steps, CFG ${TEACHER_GUIDANCE}, the same noises); `
        + `teacher-grid.png guides at flow times ${describeSchedule(TEACHER_GUIDANCE_SCHEDULE)} (the default), teacher-grid-everywhere.png everywhere.`,
      `Metrics named …_interval guide at flow times ${describeSchedule(TEACHER_GUIDANCE_SCHEDULE)} (w = 1 nearer the noise); the others guide every step (plain CFG).`,
      `FD uses the evaluator's features on ${n} generated images (eval prompts cycled) vs the ${test.predictions.length} test images; the floor is ${floorSamples} training images (seed ${floorSeed}) vs the same test images.`,
    ],
  };
}
