/**
 * Sliced W2 of a finished run's student for 1 step and for 2 steps with different middle
 * angles t_mid, on the run's held-out evaluation noises (128 per prompt):
 *
 *   npx tsx bench/two-step.bench.ts runs/gmm runs/gmm-scm
 */
import { numpy as np, tree } from "@jax-js/jax";
import { loadStudent } from "../src/index.ts";
import { column } from "../src/train/problem.ts";
import { buildGmmTeacher, conditionRows } from "../src/gmm/teacher.ts";
import { makeEvalSet, promptAveragedSw2 } from "../src/gmm/evaluate.ts";
import { mlpStudent } from "../src/gmm/student.ts";
import { sampleStudent } from "../src/method/sampler.ts";
import { SIGMA_D } from "../src/config/defaults.ts";
import { key, foldIn, normal } from "../src/numerics/random.ts";
import { takeHost } from "../src/numerics/tree.ts";

const schedules = [[], [1.3], [1.0], [0.7], [0.4], [0.2], [1.3, 0.6]];
console.log(`| run | ${schedules.map((m) => (m.length ? `[π/2, ${m.join(", ")}, 0]` : "1 step")).join(" | ")} |`);
console.log(`|---|${schedules.map(() => "---").join("|")}|`);
for (const run of process.argv.slice(2)) {
  const { params, config } = loadStudent(run);
  const problem = buildGmmTeacher(config);
  const set = makeEvalSet(problem, config, 128, foldIn(key(config.seed), 2));
  const n = set.prompts.length, d = config.teacher.dim;
  const cells = schedules.map((middle) => {
    const timesteps = [Math.PI / 2, ...middle, 0];
    const noises = [np.array(set.noise).reshape([n, d]), ...middle.map((_, i) => np.array(normal(foldIn(key(77), i), n * d)).reshape([n, d]))];
    const w = column(set.guidance);
    const x0 = sampleStudent((u, t, c) => {
      const [F, logvar] = mlpStudent(tree.ref(params), u, t, c, w.ref);
      logvar.dispose();
      return F;
    }, noises, timesteps, conditionRows(set.prompts, config.teacher.prompts));
    w.dispose();
    return promptAveragedSw2(set, takeHost(x0.div(SIGMA_D)), set.reference, d, config.eval.projections, key(5)).toFixed(3);
  });
  console.log(`| ${run} | ${cells.join(" | ")} |`);
}
