/**
 * The stack's student (spec §4): a copy of the teacher's DiT with a zero-initialised guidance
 * embedder and a logvar head, in TrigFlow form (sampled by `eval/studentSamples.ts`).
 */
import { type DitParams, type DitConfig, ditFlow } from "../models/dit.ts";
import { type Student, trigflowStudent } from "../method/student.ts";

/** The `kind` metadata of this student's files. */
export const STACK_STUDENT_KIND = "tbcm-student-dit";

/** The student in TrigFlow form: a DiT with guidance embedding and logvar head, through flow → TrigFlow (spec §2). */
export function ditStudent(c: DitConfig): Student<DitParams> {
  return trigflowStudent((p, x, s, cond, w) => ditFlow(p, c, x, s, cond, w));
}
