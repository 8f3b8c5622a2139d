/** The analytic GMM teacher (issue #2) as a distillation problem. */
import { tree } from "@jax-js/jax";
import type { GmmConfig } from "../config/schema.ts";
import { type Key, foldIn } from "../numerics/random.ts";
import { loadParams } from "../numerics/params.ts";
import { type MlpParams, initMlp } from "../models/mlp.ts";
import { sampleGmm } from "../models/gmm.ts";
import type { DistillProblem, EvalKeys } from "../train/problem.ts";
import { relativeMse } from "../eval/distance.ts";
import { buildGmmTeacher, conditionRows } from "./teacher.ts";
import { GMM_STUDENT_KIND, mlpStudent, studentConfig } from "./student.ts";
import { makeEvalSet, evaluateStudent, studentSamples, type EvalSet } from "./evaluate.ts";

export function gmmDistillProblem(cfg: GmmConfig, keys: EvalKeys): DistillProblem<MlpParams> {
  const teacher = buildGmmTeacher(cfg);
  const { spec } = teacher;
  const P = spec.prompts.length;
  const teacherIndex = (i: number) => (i < 0 ? -1 : teacher.trainPrompts[i]);
  let curveSet: EvalSet | undefined;
  return {
    dim: spec.dim,
    teacher: teacher.velocity,
    promptCount: teacher.trainPrompts.length,
    conditions: (prompts) => conditionRows(prompts.map(teacherIndex), P),
    student: mlpStudent,
    studentKind: GMM_STUDENT_KIND,
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
    decoderLoads: () => 0, // latents are the data: there is no decoder
    async curve(params) {
      curveSet ??= makeEvalSet(teacher, cfg, cfg.eval.curveNoises, keys.curve);
      return relativeMse(studentSamples(mlpStudent, params, curveSet, 1, spec.dim, P, keys.sampling), curveSet.reference);
    },
    async evaluate(params: MlpParams, _outDir: string, _k: Key) {
      const set = makeEvalSet(teacher, cfg, cfg.eval.noisesPerPrompt, keys.eval);
      await new Promise<void>((resolve) => setImmediate(resolve)); // a Ctrl-C after the reference solve is heard
      return evaluateStudent(mlpStudent, params, teacher, cfg, set, keys.sampling);
    },
    dispose() {
      tree.dispose(teacher.arrays as never);
    },
  };
}
