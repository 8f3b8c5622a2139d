/**
 * The default text-to-image pipeline at inference: prompts → text encoder → conditions;
 * teacher sampling (flow Euler, or the spec's TrigFlow route) with classifier-free guidance;
 * VAE decode → pixels. Each stage is one compiled program (ONNX Runtime by default), fed and
 * answered with host arrays; randomness comes from explicit keys.
 */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { Executor } from "../config/schema.ts";
import { SIGMA_D, ROUTE_SHIFT } from "../config/defaults.ts";
import { type Key, normal } from "../numerics/random.ts";
import { encodeText, tokenRows } from "../models/textEncoder.ts";
import { ditFlow } from "../models/dit.ts";
import { vaeDecode } from "../models/vae.ts";
import { flowToTrigVelocity } from "../method/flowToTrig.ts";
import { sampleTrajectory } from "../method/trajectory.ts";
import { type GuidanceSchedule, GUIDE_EVERYWHERE, guidanceShare } from "../method/guidance.ts";
import { routeAngles } from "../method/route.ts";
import { unknownWords, hasKnownWord, words } from "../data/tokenizer.ts";
import { quotePrompt } from "../data/prompts.ts";
import { inference, inChunks, type Inference } from "../executor/inference.ts";
import type { HostTensor } from "../executor/onnxRun.ts";
import { type LoadedTeacher, type LoadedVae, loadTeacher, loadVae } from "./load.ts";

export type TeacherSampler = "euler" | "trigflow";

/** Flow times of an N-step Euler sampler, 1 → 0, warped by `shift` like the teacher's schedule. */
export function flowTimesteps(steps: number, shift: number): number[] {
  return globalThis.Array.from({ length: steps + 1 }, (_, i) => {
    const a = 1 - i / steps;
    return (shift * a) / (1 + (shift - 1) * a);
  });
}

/** The text encoder as a program: one-hot words and mask → conditions. */
export function textEncoderProgram(teacher: LoadedTeacher, executor: Executor): Inference {
  return inference(executor, teacher.params.text, (p, oneHot, mask) => encodeText(p, teacher.text, oneHot, mask), "text_encoder");
}

/** Conditions [B, L+1, D+1] of prompts ("" is the unconditional one), by a text-encoder program. */
export async function encodeConditions(program: Inference, teacher: LoadedTeacher, prompts: readonly string[]): Promise<HostTensor> {
  const { text, tokenizer } = teacher;
  const { oneHot, mask } = tokenRows(tokenizer, prompts, text);
  const [c] = await inChunks(program, [
    { data: oneHot, shape: [prompts.length, text.maxWords, text.vocab] }, { data: mask, shape: [prompts.length, text.maxWords + 1] },
  ], prompts.length, Math.min(prompts.length, 256));
  return c;
}

/** The teacher's guided flow-Euler step (cond and uncond as one batch), per-sample w. */
export function guidedEulerStep(teacher: LoadedTeacher, executor: Executor): Inference {
  return inference(executor, teacher.params.dit, (p, x, s, sNext, cond, uncond, w) => {
    const [v, logvar] = ditFlow(p, teacher.dit, np.concatenate([x.ref, x.ref], 0), np.concatenate([s.ref, s.ref], 0), np.concatenate([cond, uncond], 0));
    logvar.dispose();
    const [vc, vu] = np.split(v, 2, 0);
    return x.add(vu.ref.add(w.mul(vc.sub(vu))).mul(sNext.sub(s)));
  }, "teacher_euler_step");
}

/**
 * Runs the flow ODE from noise (s = 1) to s = 0 with `steps` guided Euler steps; returns latents
 * [B·d]. The guidance of each step is `schedule`'s at the flow time the step starts from. With
 * `from` < 1, `noise` is the state at flow time `from` and the times are scaled to start there.
 */
export async function eulerEndpoint(step: Inference, noise: Float32Array, cond: HostTensor, uncond: HostTensor, w: HostTensor, steps: number, o: { shift?: number; schedule?: GuidanceSchedule; from?: number } = {}): Promise<Float32Array> {
  const B = cond.shape[0], d = noise.length / B;
  const times = flowTimesteps(steps, o.shift ?? 1).map((s) => s * (o.from ?? 1));
  let x: HostTensor = { data: noise, shape: [B, d] };
  const col = (v: number) => ({ data: new Float32Array(B).fill(v), shape: [B, 1] });
  for (let i = 0; i < steps; i++) {
    const share = guidanceShare(times[i], o.schedule ?? GUIDE_EVERYWHERE);
    const guided = share === 1 ? w : { data: w.data.map((v) => 1 + (v - 1) * share), shape: w.shape };
    [x] = await inChunks(step, [x, col(times[i]), col(times[i + 1]), cond, uncond, guided], B, Math.min(B, 250));
  }
  return x.data;
}

export class StackPipeline {
  readonly #text: Inference;
  readonly #euler: Inference;
  readonly #decode: Inference;
  readonly #routes = new Map<string, Inference>();

  private constructor(readonly teacher: LoadedTeacher, readonly vae: LoadedVae, readonly executor: Executor) {
    this.#text = textEncoderProgram(teacher, executor);
    this.#euler = guidedEulerStep(teacher, executor);
    this.#decode = inference(executor, vae.params, (p, z) => vaeDecode(p, vae.config, z.div(vae.scale)), "vae_decode");
  }

  static load(paths: { teacher: string; vae: string }, executor: Executor = "onnx"): StackPipeline {
    return new StackPipeline(loadTeacher(paths.teacher), loadVae(paths.vae), executor);
  }

  get latentDim(): number {
    return this.teacher.latentDim;
  }

  /** Words of the prompts the text encoder does not know (read as <unk>). */
  unknownWords(prompts: readonly string[]): string[] {
    return [...new Set(prompts.flatMap((p) => unknownWords(this.teacher.tokenizer, p)))];
  }

  /**
   * Refuses a prompt with no word the text encoder knows ("", "ドレス", "zzz"): it would silently
   * draw the empty prompt's images; and one longer than the encoder takes.
   */
  checkPrompts(prompts: readonly string[]): void {
    const { tokenizer, text } = this.teacher;
    for (const p of prompts) {
      if (!hasKnownWord(tokenizer, p)) throw new Error(`prompt ${quotePrompt(p)} has no word the text encoder knows: it would draw the empty prompt's images (the vocabulary is Fashion-MNIST's captions, e.g. "a photo of a sneaker")`);
      const n = words(p).length;
      if (n > text.maxWords) throw new Error(`prompt ${quotePrompt(p)} has ${n} words; the text encoder takes at most ${text.maxWords}`);
    }
  }

  /** Conditions [B, L+1, D+1] of prompts ("" is the unconditional one). */
  conditions(prompts: readonly string[]): Promise<HostTensor> {
    return encodeConditions(this.#text, this.teacher, prompts);
  }

  /** Teacher samples as scaled latents [B·d] (unit variance), from noise drawn with `k`. */
  async sampleTeacher(prompts: readonly string[], o: { steps: number; guidance: number; k: Key; sampler?: TeacherSampler; shift?: number; schedule?: GuidanceSchedule }): Promise<Float32Array> {
    const B = prompts.length, d = this.latentDim, chunk = Math.min(B, 250);
    const cond = await this.conditions(prompts);
    const uncond = await this.conditions(prompts.map(() => ""));
    const noise = normal(o.k, B * d);
    const w = { data: new Float32Array(B).fill(o.guidance), shape: [B, 1] };
    if ((o.sampler ?? "euler") === "trigflow") {
      const program = this.#route(o.steps, o.shift ?? ROUTE_SHIFT, o.schedule ?? GUIDE_EVERYWHERE);
      const [x0] = await inChunks(program, [{ data: noise, shape: [B, d] }, cond, uncond, w], B, chunk);
      return x0.data.map((v) => v / SIGMA_D);
    }
    return eulerEndpoint(this.#euler, noise, cond, uncond, w, o.steps, { shift: o.shift, schedule: o.schedule });
  }

  /** The whole TrigFlow-route sampler of spec §3 (no jitter) as one program. */
  #route(steps: number, shift: number, schedule: GuidanceSchedule): Inference {
    const id = `${steps}/${shift}/${schedule.interval.join(",")}/${schedule.ramp}`;
    let p = this.#routes.get(id);
    if (!p) {
      const angles = Float32Array.from(routeAngles(shift, steps));
      const dit = this.teacher.dit;
      p = inference(this.executor, this.teacher.params.dit, (params, noise, cond, uncond, w) => {
        const velocity = (u: Array, t: Array, c: Array) => flowToTrigVelocity((x, s) => {
          const [v, lv] = ditFlow(tree.ref(params), dit, x, s, c);
          lv.dispose();
          return v;
        }, u, t);
        const traj = sampleTrajectory(velocity, noise.mul(SIGMA_D), np.array(angles), cond, uncond, w, schedule);
        tree.dispose(params);
        traj.points.forEach((a) => a.dispose());
        traj.velocities.forEach((a) => a.dispose());
        return traj.endpoint;
      }, "teacher_route");
      this.#routes.set(id, p);
    }
    return p;
  }

  /** Scaled latents [B·d] → pixels [B·784] in [0, 1]. */
  async decode(latents: Float32Array): Promise<Float32Array> {
    const B = latents.length / this.latentDim;
    const [x] = await inChunks(this.#decode, [{ data: latents, shape: [B, this.latentDim] }], B, Math.min(B, 500));
    return x.data.map((v) => Math.min(1, Math.max(0, v)));
  }

  async dispose(): Promise<void> {
    await this.#text.dispose(); await this.#euler.dispose(); await this.#decode.dispose();
    for (const p of this.#routes.values()) await p.dispose();
    tree.dispose([this.teacher.params as never, this.vae.params as never]);
  }
}
