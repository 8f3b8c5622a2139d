/** The analytic GMM teacher (issue #2) as a distillation problem. */
import { tree } from "@jax-js/jax";
import type { TbcmConfig } from "../config/schema.ts";
import { type Key, foldIn } from "../numerics/random.ts";
import { type MlpParams, type MlpConfig, initMlp, studentForward } from "../models/mlp.ts";
import { sampleGmm } from "../models/gmm.ts";
import { type DistillProblem, buildProblem, conditionRows } from "./problem.ts";
import { loadParams } from "./checkpoint.ts";
import { makeEvalSet, evaluateStudent, studentSamples, type EvalSet } from "../eval/evaluate.ts";
import { relativeMse } from "../eval/distance.ts";

export function studentConfig(cfg: TbcmConfig): MlpConfig {
  return {
    dim: cfg.teacher.dim, condDim: cfg.teacher.prompts, hidden: cfg.student.hidden,
    embedDim: cfg.student.embedDim, depth: cfg.student.depth, mlpRatio: cfg.student.mlpRatio,
  };
}

/** Keys of the evaluation streams of a run. */
export type EvalKeys = { curve: Key; eval: Key; sampling: Key };

export function gmmDistillProblem(cfg: TbcmConfig, keys: EvalKeys): DistillProblem<MlpParams> {
  const problem = buildProblem(cfg);
  const { spec } = problem;
  const P = spec.prompts.length;
  const teacherIndex = (i: number) => (i < 0 ? -1 : problem.trainPrompts[i]);
  let curveSet: EvalSet | undefined;
  return {
    dim: spec.dim,
    teacher: problem.teacher,
    promptCount: problem.trainPrompts.length,
    conditions: (prompts) => conditionRows(prompts.map(teacherIndex), P),
    student: studentForward,
    studentKind: "tbcm-student-mlp",
    blackLatent: Float32Array.from(cfg.blackLatent),
    initialStudent(k) {
      const fresh = initMlp(k, studentConfig(cfg));
      if (!cfg.student.init) return fresh;
      const { params } = loadParams(cfg.student.init, fresh);
      tree.dispose(fresh);
      return params;
    },
    realLatents(k, prompts) {
      const z = new Float32Array(prompts.length * spec.dim);
      prompts.forEach((p, r) => z.set(sampleGmm(spec, foldIn(k, r), teacherIndex(p), 1), r * spec.dim));
      return z;
    },
    async curve(params) {
      curveSet ??= makeEvalSet(problem, cfg, cfg.eval.curveNoises, keys.curve);
      return relativeMse(studentSamples(studentForward, params, curveSet, 1, spec.dim, P, keys.sampling), curveSet.reference);
    },
    async evaluate(params) {
      const set = makeEvalSet(problem, cfg, cfg.eval.noisesPerPrompt, keys.eval);
      return evaluateStudent(studentForward, params, problem, cfg, set, keys.sampling);
    },
    dispose() {
      tree.dispose(problem.arrays as never);
    },
  };
}
