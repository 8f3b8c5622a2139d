/**
 * `tbcm train-teacher` for the analytic teacher: fits the student network (a flow-matching
 * model with a guidance embedding) to the teacher's guided velocity on points of the
 * flow-matching path, so that distillation starts from a teacher copy, as Sana-Sprint's student
 * starts from its guidance-embedded teacher. The flow time is logit-normal (s = sigmoid(n)).
 */
import { numpy as np, jit, valueAndGrad, tree, type Array } from "@jax-js/jax";
import type { GmmConfig } from "../config/schema.ts";
import { type Key, key, foldIn, normal, uniform } from "../numerics/random.ts";
import type { Tree } from "../numerics/tree.ts";
import { gmmFlowVelocity, sampleGmm } from "../models/gmm.ts";
import { type MlpParams, initMlp, mlpFlow } from "../models/mlp.ts";
import { adamw, type LeafState } from "../train/optim.ts";
import { column } from "../train/problem.ts";
import { type GmmTeacher, buildGmmTeacher, conditionRows } from "./teacher.ts";
import { saveParams } from "../numerics/params.ts";
import { learningRate } from "../train/schedule.ts";
import { studentConfig } from "./student.ts";

export type PretrainResult = { finalLoss: number; relativeError: number; seconds: number };

/** Points x_s = (1−s)·z + s·ε on the path of the mixture, with their prompts, scales and times. */
function pathBatch(cfg: GmmConfig, problem: GmmTeacher, k: Key) {
  const { dim: d } = problem.spec;
  const B = cfg.pretrain.batch;
  const prompts = globalThis.Array.from(uniform(foldIn(k, 1), B), (u) => problem.trainPrompts[Math.floor(u * problem.trainPrompts.length)]);
  const scales = globalThis.Array.from(uniform(foldIn(k, 2), B), (u) => cfg.guidance[Math.floor(u * cfg.guidance.length)]);
  const s = normal(foldIn(k, 3), B).map((n) => 1 / (1 + Math.exp(-n)));
  const eps = normal(foldIn(k, 4), B * d);
  const xs = new Float32Array(B * d);
  prompts.forEach((p, b) => {
    const z = sampleGmm(problem.spec, foldIn(foldIn(k, 5), b), p, 1);
    for (let j = 0; j < d; j++) xs[b * d + j] = (1 - s[b]) * z[j] + s[b] * eps[b * d + j];
  });
  return { prompts, scales, s, xs };
}

export async function pretrainTeacherCopy(cfg: GmmConfig, outPath: string, say: (line: string) => void = () => {}): Promise<PretrainResult> {
  const P = cfg.teacher.prompts;
  const d = cfg.teacher.dim;
  const problem = buildGmmTeacher(cfg);
  const opt = adamw({ kind: "adamw", lr: cfg.pretrain.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  let params: MlpParams = initMlp(foldIn(key(cfg.seed), 1), studentConfig(cfg));
  let state: LeafState[] = opt.init(tree.flatten(params as Tree)[0] as Array[]);
  // The guided teacher velocity in flow space: v_u + w·(v_c − v_u).
  const guided = (xs: Array, s: Array, c: Array, u: Array, w: Array) => {
    const vc = gmmFlowVelocity(tree.ref(problem.arrays), cfg.teacher.std, c, xs.ref, s.ref);
    const vu = gmmFlowVelocity(tree.ref(problem.arrays), cfg.teacher.std, u, xs, s);
    return vu.ref.add(w.mul(vc.sub(vu)));
  };
  const step = jit((p: MlpParams, st: LeafState[], xs: Array, s: Array, c: Array, u: Array, w: Array, hyper: Record<string, Array>) => {
    const target = guided(xs.ref, s.ref, c.ref, u, w.ref);
    const [loss, grads] = valueAndGrad((pp: MlpParams) => {
      const [v, logvar] = mlpFlow(pp, xs.ref, s.ref, c.ref, w.ref);
      logvar.dispose();
      return np.mean(np.square(v.sub(target.ref)));
    })(tree.ref(p) as never);
    const rel = loss.ref.div(np.mean(np.square(target)));
    tree.dispose([xs, s, c, w]);
    const [leaves, def] = tree.flatten(p as Tree);
    const [next, nextState] = opt.update(tree.flatten(grads as Tree)[0] as Array[], st, leaves as Array[], hyper);
    return [tree.unflatten(def, next) as MlpParams, nextState, np.stack([loss, rel])] as [MlpParams, LeafState[], Array];
  });
  const t0 = performance.now();
  let last = [NaN, NaN];
  const steps = cfg.pretrain.steps;
  for (let i = 0; i < steps; i++) {
    const { prompts, scales, s, xs } = pathBatch(cfg, problem, foldIn(foldIn(key(cfg.seed), 7), i));
    const lr = learningRate(i, steps, cfg.pretrain.lr, { kind: "cosine", warmup: 0 });
    const hyper = Object.fromEntries(Object.entries(opt.hyper(i, lr)).map(([n, v]) => [n, np.array(v)]));
    const [p2, s2, stats] = step(params, state, np.array(xs).reshape([prompts.length, d]), column(s),
      conditionRows(prompts, P), conditionRows(prompts.map(() => -1), P), column(scales), hyper);
    params = p2; state = s2;
    last = globalThis.Array.from(await stats.data());
    if ((i + 1) % 100 === 0 || i + 1 === steps) {
      const rate = (i + 1) / ((performance.now() - t0) / 1000);
      say(`train-teacher step ${i + 1}/${steps}  mse ${last[0].toFixed(4)}  relative ${last[1].toFixed(4)}  ETA ${Math.round((steps - i - 1) / rate)} s`);
    }
  }
  step.dispose();
  saveParams(outPath, params, { config: JSON.stringify(cfg), kind: "tbcm-teacher-copy-mlp", steps: String(steps) });
  tree.dispose([params as Tree, state as unknown as Tree]);
  return { finalLoss: last[0], relativeError: last[1], seconds: (performance.now() - t0) / 1000 };
}
