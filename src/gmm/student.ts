/** The analytic benchmark's student: the MLP of `models/mlp.ts` in TrigFlow form (spec §2). */
import type { GmmConfig } from "../config/schema.ts";
import { type MlpConfig, type MlpParams, mlpFlow } from "../models/mlp.ts";
import { type Student, trigflowStudent } from "../method/student.ts";

/** The `kind` metadata of this student's files. */
export const GMM_STUDENT_KIND = "tbcm-student-mlp";

/** The MLP as a TrigFlow student: u = x_t/σ_d [B, d], t [B, 1], cond [B, P], w [B, 1] → [F, logvar]. */
export const mlpStudent: Student<MlpParams> = trigflowStudent(mlpFlow);

/** The MLP's shape from a gmm config. */
export function studentConfig(cfg: GmmConfig): MlpConfig {
  return {
    dim: cfg.teacher.dim, condDim: cfg.teacher.prompts, hidden: cfg.student.hidden,
    embedDim: cfg.student.embedDim, depth: cfg.student.depth, mlpRatio: cfg.student.mlpRatio,
  };
}
