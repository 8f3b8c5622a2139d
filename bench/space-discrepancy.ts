/**
 * The "diffusion–generation space discrepancy" of TBCM's training inputs (bench/RESULTS.md §20):
 * at each angle t of the 16-step route, the Fréchet distance between
 *   (a) the teacher's trajectory states x_t — the pairs TBCM trains on (route without jitter,
 *       the training prompts cycled, guidance scales 4 / 4.5 / 5 cycled), guided everywhere (the
 *       main config) and with the default guidance interval (s ≤ 0.5, logistic edge 0.1), and
 *   (b) forward-noised real latents x_t = cos t·x0 + sin t·σ_d·ε, x0 = σ_d·(VAE encoder mean of a
 *       training image of the prompt's class, scaled), as the sCM baseline makes them,
 * measured in the latent itself: x_t/σ_d flattened (7·7·4 = 196 numbers), full covariance, no
 * features. "floor" is the FD between two independent real sets of the same size (the estimate's
 * own bias at this n and dimension); "tr ratio" is the teacher states' total variance over the real
 * ones' (> 1: spread wider than the data's diffusion; < 1: collapsed).
 *
 *   npx tsx bench/space-discrepancy.ts [--samples 1000] [--seed 0]
 */
import { parseArgs } from "node:util";
import { numpy as np, tree } from "@jax-js/jax";
import { SIGMA_D, ROUTE_SHIFT, ROUTE_STEPS, GUIDANCE_SCALES } from "../src/config/defaults.ts";
import { key, foldIn, normal, uniform } from "../src/numerics/random.ts";
import { loadTeacher, loadVae } from "../src/stack/load.ts";
import { textEncoderProgram, encodeConditions } from "../src/stack/pipeline.ts";
import { inference, inChunks } from "../src/executor/inference.ts";
import { ditFlow } from "../src/models/dit.ts";
import { vaeEncode } from "../src/models/vae.ts";
import { flowToTrigVelocity } from "../src/method/flowToTrig.ts";
import { sampleTrajectory } from "../src/method/trajectory.ts";
import { type GuidanceSchedule, GUIDE_EVERYWHERE } from "../src/method/guidance.ts";
import { routeAngles } from "../src/method/route.ts";
import { readPromptFile } from "../src/data/prompts.ts";
import { captionLabel } from "../src/data/captions.ts";
import { loadSplit } from "../src/stack/common.ts";
import { featureMoments, frechetDistance } from "../src/eval/frechet.ts";
import type { HostTensor } from "../src/executor/onnxRun.ts";

const { values } = parseArgs({ options: { samples: { type: "string" }, seed: { type: "string" } } });
const n = Number(values.samples ?? 1000);
const k = key(Number(values.seed ?? 0));
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;

const teacher = loadTeacher("models/fmnist/teacher.safetensors");
const d = teacher.latentDim;
const route = routeAngles(ROUTE_SHIFT, ROUTE_STEPS);
const N = route.length;

// prompts of the training file, cycled; their classes pick the real images
const all = readPromptFile("prompts/train.txt");
const prompts = Array.from({ length: n }, (_, i) => all[i % all.length]);
const labels = prompts.map(captionLabel);
if (labels.some((c) => c < 0)) throw new Error("a training prompt names no class");
const text = textEncoderProgram(teacher, "onnx");
const cond = await encodeConditions(text, teacher, prompts);
const uncond = await encodeConditions(text, teacher, prompts.map(() => ""));
await text.dispose();
const w: HostTensor = { data: Float32Array.from(prompts, (_, i) => GUIDANCE_SCALES[i % GUIDANCE_SCALES.length]), shape: [n, 1] };
const noise: HostTensor = { data: normal(foldIn(k, 1), n * d), shape: [n, d] };

/** The teacher's trajectory states along the route (TBCM's pass, no jitter): [n, N·d] (x_t/σ_d) and the endpoint [n, d]. */
async function trajectoryStates(schedule: GuidanceSchedule): Promise<{ states: Float32Array; endpoint: Float32Array }> {
  const program = inference("onnx", teacher.params.dit, (p, z, c, u, ww) => {
    const velocity = (x: typeof z, t: typeof z, cc: typeof z) => flowToTrigVelocity((xf, s) => {
      const [v, lv] = ditFlow(tree.ref(p), teacher.dit, xf, s, cc);
      lv.dispose();
      return v;
    }, x, t);
    const traj = sampleTrajectory(velocity, z.mul(SIGMA_D), np.array(route), c, u, ww, schedule);
    tree.dispose(p);
    traj.velocities.forEach((v) => v.dispose());
    return [np.concatenate(traj.points, 1).div(SIGMA_D), traj.endpoint.div(SIGMA_D)];
  }, "space_discrepancy_route");
  const [states, endpoint] = await inChunks(program, [noise, cond, uncond, w], n, Math.min(n, 250));
  await program.dispose();
  return { states: states.data, endpoint: endpoint.data };
}

// real latents (scaled, unit variance), one set per draw key: images of each prompt's class
const vae = loadVae("models/fmnist/vae.safetensors");
const train = loadSplit("", "train");
const byClass: number[][] = Array.from({ length: 10 }, () => []);
for (let i = 0; i < train.count; i++) byClass[train.labels[i]].push(i);
const encode = inference("onnx", vae.params, (p, x) => vaeEncode(p, vae.config, x)[0].mul(vae.scale), "vae_encode");
async function realLatents(kk: number): Promise<Float32Array> {
  const u = uniform(kk, n);
  const px = new Float32Array(n * 784);
  labels.forEach((c, r) => {
    const pool = byClass[c];
    const i = pool[Math.min(pool.length - 1, Math.floor(u[r] * pool.length))];
    for (let j = 0; j < 784; j++) px[r * 784 + j] = train.images[i * 784 + j] / 255;
  });
  const [z] = await inChunks(encode, [{ data: px, shape: [n, 784] }], n, Math.min(n, 500));
  return z.data;
}
const realA = await realLatents(foldIn(k, 2)), realB = await realLatents(foldIn(k, 3));
const epsA = normal(foldIn(k, 4), n * d), epsB = normal(foldIn(k, 5), n * d);
await encode.dispose();
tree.dispose(vae.params);
console.error(`real latents encoded (${elapsed()})`);

const everywhere = await trajectoryStates(GUIDE_EVERYWHERE);
console.error(`trajectories guided everywhere (${elapsed()})`);
const interval = await trajectoryStates({ interval: [0, 0.5], ramp: 0.1 });
console.error(`trajectories guided at s ≤ 0.5 (${elapsed()})`);

const moments = (x: Float32Array) => featureMoments(x, n, d);
const trace = (c: Float64Array) => { let s = 0; for (let j = 0; j < d; j++) s += c[j * d + j]; return s; };
const noised = (z: Float32Array, eps: Float32Array, t: number) => z.map((v, i) => Math.cos(t) * v + Math.sin(t) * eps[i]);
const column = (states: Float32Array, i: number) => {
  const out = new Float32Array(n * d);
  for (let r = 0; r < n; r++) out.set(states.subarray(r * N * d + i * d, r * N * d + (i + 1) * d), r * d);
  return out;
};

console.log(`space discrepancy: teacher trajectory states vs forward-noised real latents, ${n} per set, FD in the ${d}-d latent (x_t/σ_d)`);
console.log("| i | angle t | flow time s | FD guided everywhere | FD interval s ≤ 0.5 | floor (real vs real) | tr ratio everywhere | tr ratio interval |");
console.log("|---|---|---|---|---|---|---|---|");
const rows = [...route.map((t, i) => ({ i: String(i), t, ev: column(everywhere.states, i), iv: column(interval.states, i) })),
  { i: "end", t: 0, ev: everywhere.endpoint, iv: interval.endpoint }];
for (const { i, t, ev, iv } of rows) {
  const real = moments(noised(realA, epsA, t)), other = moments(noised(realB, epsB, t));
  const e = moments(ev), v = moments(iv);
  const fd = (m: { mean: Float64Array; cov: Float64Array }) => frechetDistance(m.mean, m.cov, real.mean, real.cov);
  const s = Math.sin(t) / (Math.sin(t) + Math.cos(t));
  console.log(`| ${i} | ${t.toFixed(4)} | ${s.toFixed(3)} | ${fd(e).toFixed(2)} | ${fd(v).toFixed(2)} | ${fd(other).toFixed(2)} | `
    + `${(trace(e.cov) / trace(real.cov)).toFixed(3)} | ${(trace(v.cov) / trace(real.cov)).toFixed(3)} |`);
}
console.error(`done (${elapsed()})`);
tree.dispose(teacher.params as never);
