/**
 * `tbcm export` for a student of a teacher bundle: `transformer.onnx` in the teacher's own
 * contract — the same input names, shapes (symbolic batch), time convention and output name —
 * so that code that runs the teacher runs the student. Its output is the student's flow velocity
 * v(x_s, s, c) (at the guidance scale baked in: teacher.json's default_guidance, for a student
 * with a guidance embedding); its consistency sample from x_s is x0 = x_s − s·v. One Euler step of
 * the flow sampler from s = 1 to 0 (x0 = ε − v) is exactly the student's 1-step sample; for more
 * steps re-noise x0 (x_s' = (1 − s')·x0 + s'·ε') instead of Euler-stepping. A manifest.json
 * says so. The bundle's decoder and prompt-embeddings table are copied next to it, unchanged, so
 * the folder is all a program needs to draw images (manifest.json's `prompt_embeddings`, `vae_decoder`).
 */
import { writeFileSync, mkdirSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { numpy as np, tree, type Array } from "@jax-js/jax";
import type { BundleConfig } from "../config/schema.ts";
import { lowerFunction, avalSpec, DECLARED_TYPES, type DeclaredType } from "../executor/lower.ts";
import { studentTimesteps } from "../method/sampler.ts";
import type { Tree } from "../numerics/tree.ts";
import { OnnxFile, type HostTensor } from "../executor/onnxRun.ts";
import { key, normal } from "../numerics/random.ts";
import { loadBundle, tableRows, type LoadedBundle } from "./load.ts";
import { teacherFeeds } from "./parity.ts";
import { isUnconditional } from "./manifest.ts";
import { readOnnxFile } from "../onnx/reader.ts";
import { bundleConfig } from "./problem.ts";
import { type BundleStudentParams, bundleFlowStudent, guidanceConditioned } from "./student.ts";

/**
 * The batch the student is traced at, whose axis the file makes symbolic (`LowerOptions.batch`):
 * the first prime from 11 that divides none of the teacher's sizes (its inputs', initializers' and
 * table tensors'), so that no other axis — 77 CLIP tokens, a constant of 11 ids — can be taken for
 * the batch (a Reshape of tokens × (batch · features) would answer wrongly at another batch).
 */
export function traceBatch(b: LoadedBundle): number {
  const dims = [
    ...b.manifest.latentShape, ...b.table.parts.flatMap((p) => p.shape), ...[...b.table.constants.values()].flatMap((c) => c.shape),
    ...b.transformer.inputs.flatMap((i) => i.shape.filter((d): d is number => typeof d === "number")),
    ...Object.values(b.transformer.params).flatMap((t) => t.shape),
  ];
  for (let p = 11; ; p++) {
    if (isPrime(p) && dims.every((d) => d % p !== 0)) return p;
  }
}
const isPrime = (n: number) => { for (let k = 2; k * k <= n; k++) if (n % k === 0) return false; return n > 1; };

/**
 * Batch sizes the export is run at before it is written (with the traced batch T), each against the
 * student traced at that size: the smallest, and one past T (a list of rows fixed at T answers
 * a smaller batch by luck, its slices clamped, and a larger one short).
 */
const checkBatches = (T: number) => [1, 2, T + 1];
/**
 * Relative error between the two above which the export is refused: both run the same float32 ops
 * (~1e-7); a float16 output may round one ulp apart (~1e-3 of an element).
 */
const BATCH_CHECK_TOLERANCE = { float32: 1e-4, float16: 1e-2 };

/**
 * The student `p` of bundle `b` as an ONNX file in the teacher's contract (the batch axis symbolic,
 * traced at `traceBatch`, the guidance baked at `guidance` unless the teacher takes it as an input),
 * after running the file at other batch sizes (checkBatches) against the student traced at each: a
 * value the teacher computes from its batch size that the trace fixed (an index list over the
 * batch) would otherwise answer wrongly, or not at all, at any batch but the traced one — a
 * one-line error. `tbcm export` writes it; `tbcm check-bundle` runs it on the student a run
 * starts from, to say before the run whether its student will export.
 */
export async function studentInContract(b: LoadedBundle, p: BundleStudentParams, guidance: number) {
  const m = b.manifest.transformer;
  const flow = bundleFlowStudent(b);
  const specs = b.transformer.inputs;
  const T = traceBatch(b);
  // position in [latent, time, ...conditions, guidance, ...constants]
  const nc = m.inputs.condition.length, ng = m.inputs.guidance ? 1 : 0;
  const role = (name: string) => (name === m.inputs.latent ? 0 : name === m.inputs.time ? 1 : name === m.inputs.guidance ? 2 + nc
    : m.inputs.constant.includes(name) ? 2 + nc + ng + m.inputs.constant.indexOf(name) : 2 + m.inputs.condition.indexOf(name));
  const specOf = (name: string) => specs.find((s) => s.name === name)!;
  const perSample = (name: string, B: number) => (specOf(name).shape.length === 1 ? [B] : [B, 1]);
  // a constant input as the teacher declares it: with the batch axis where that is dynamic
  const constantShape = (name: string, B: number) => {
    const value = b.table.constants.get(name)!.shape, declared = specOf(name).shape;
    return declared.length > 0 && typeof declared[0] !== "number" ? [B, ...value] : [...value];
  };
  const shapeOf = (name: string, B: number) => role(name) === 0 ? [B, ...b.manifest.latentShape]
    : role(name) === 1 || (ng && role(name) === 2 + nc) ? perSample(name, B)
    : m.inputs.constant.includes(name) ? constantShape(name, B) : [B, ...b.table.parts[role(name) - 2].shape];
  // every input and the output keep the teacher's element type in the file (an int64 attention mask, a float16
  // teacher's latent), cast to and from the float32 the student computes in; bfloat16 is declared float32
  const declared = (dtype: string): DeclaredType | undefined => (DECLARED_TYPES as readonly string[]).includes(dtype) ? dtype as DeclaredType : undefined;
  const inputTypes = Object.fromEntries(specs.flatMap((s) => (declared(s.dtype) ? [[s.name, declared(s.dtype)!]] : [])));
  const outputType = declared(b.transformer.outputs.find((o) => o.name === m.output)!.dtype);
  // the student at batch B, in the teacher's contract
  const studentAt = (B: number) => (...xs: Array[]) => {
    const byRole: Array[] = [];
    specs.forEach((s, i) => { byRole[role(s.name)] = xs[i]; });
    const [x, t, ...rest] = byRole;
    const conds = rest.slice(0, nc);
    // the condition inputs as one table row each (what the student takes), flattened and concatenated when several
    // (an unconditional teacher's student reads no row: a placeholder)
    const c = conds.length === 0 ? np.zeros([1, 1]) : conds.length === 1 ? conds[0] : np.concatenate(conds.map((a) => a.reshape([B, -1])), 1);
    // the scale: the caller's, at the teacher's guidance input; else baked, as one row broadcast inside (a [B, 1] constant would fix the file's batch)
    const w = m.inputs.guidance ? rest[nc].reshape([B, 1]).div(m.guidanceInputScale) : np.full([1, 1], guidance);
    const own = t.reshape([B, 1]).div(m.timeScale); // the model's own time: s, or 1 − s (noise_at 0)
    const s = m.noiseAt === 1 ? own : own.mul(-1).add(1), xFlat = x.reshape([B, b.dim]);
    // the constant inputs as fed (a caller's other position ids reach the network, as they would reach the teacher)
    const [v, logvar] = flow(tree.ref(p), xFlat.ref, s.ref, c, w, rest.slice(nc + ng));
    logvar.dispose();
    // the teacher's own output: x0 = x_s − s·v, or the velocity in its own time (−v with noise at 0)
    const out = m.prediction === "x0" ? xFlat.sub(v.mul(s)) : (xFlat.dispose(), s.dispose(), m.noiseAt === 1 ? v : v.mul(-1));
    return out.reshape([B, ...b.manifest.latentShape]);
  };
  // traced at T with the batch axis symbolic (the file), or at exactly B (what the file must answer at B)
  const lower = (B: number, symbolic: boolean) => lowerFunction(studentAt(B), specs.map((s) => avalSpec(shapeOf(s.name, B))) as never, {
    name: "tbcm_student", inputNames: specs.map((s) => s.name), outputNames: [m.output], inputTypes, outputTypes: outputType ? { [m.output]: outputType } : {},
    ...(symbolic ? { batch: { size: B, name: "batch" } } : {}),
  });
  const lowered = lower(T, true);
  await checkOtherBatches(b, lowered.model, T, (B) => lower(B, false).model, guidance, BATCH_CHECK_TOLERANCE[outputType === "float16" ? "float16" : "float32"]);
  return { lowered, traceBatch: T, shapeOf, inputTypes, outputType };
}

/** Writes transformer.onnx (the student in the teacher's contract, `studentInContract`) and manifest.json into `outDir`. */
export async function exportBundleStudent(config: BundleConfig, params: Tree, outDir: string, o: { batch: number }) {
  const cfg = bundleConfig(config);
  const b = loadBundle(cfg.teacher.dir);
  const m = b.manifest.transformer, specs = b.transformer.inputs, guidance = cfg.eval.guidance;
  const { lowered, traceBatch: T, shapeOf, inputTypes, outputType } = await studentInContract(b, params as BundleStudentParams, guidance).catch((e: Error) => {
    throw new Error(`${e.message.split("\n")[0]}; nothing was written`);
  });
  const specOf = (name: string) => specs.find((s) => s.name === name)!;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "transformer.onnx"), lowered.model);
  // what else a program needs to draw images: the table (conditions by prompt) and the decoder, unchanged
  const dec = b.manifest.vaeDecoder;
  // an unconditional teacher's bundle may have no table (it is needed only for constant inputs' values)
  const table = existsSync(join(b.dir, b.manifest.promptEmbeddings.file)) ? b.manifest.promptEmbeddings.file : null;
  if (table) copyFileSync(join(b.dir, table), join(outDir, table));
  const decoder = dec && existsSync(join(b.dir, dec.file)) ? dec : null;
  // a float16 decoder takes and gives float16 (a program converts)
  const decoderIo = decoder ? readOnnxFile(join(b.dir, decoder.file)).graph : null;
  const decoderTypes = decoderIo ? {
    input_type: decoderIo.inputs.find((i) => i.name === decoder!.input)?.dtype ?? "float32", output_type: decoderIo.outputs.find((o) => o.name === decoder!.output)?.dtype ?? "float32",
  } : {};
  if (decoder) copyFileSync(join(b.dir, decoder.file), join(outDir, decoder.file));
  const flowTimes = (steps: number) => studentTimesteps(steps, cfg.eval.twoStepMid, undefined, cfg.eval.multiStep).map((t) => Math.sin(t) / (Math.sin(t) + Math.cos(t)));
  const manifest = {
    format: "tbcm-bundle-student-1",
    models: { transformer: "transformer.onnx", ...(decoder ? { vae_decoder: decoder.file } : {}) },
    contract: `the teacher's (${join(b.dir, "teacher.json")}): inputs ${specs.map((s) => `${s.name} [${shapeOf(s.name, T).map((d, i) => (i === 0 ? "batch" : d)).join(", ")}]`).join(", ")}; output ${m.output}; time input = ${m.noiseAt === 1 ? `${m.timeScale}·s` : `${m.timeScale}·(1 − s)`}`,
    inputs: Object.fromEntries(specs.map((s) => [s.name, { shape: shapeOf(s.name, T).map((d, i) => (i === 0 ? "batch" : d)), ...(inputTypes[s.name] ? { type: inputTypes[s.name] } : {}) }])),
    // the element type of each input and of the output that is not float32 (a program builds and reads those tensors so)
    input_types: inputTypes,
    ...(outputType ? { output_type: outputType } : {}),
    output_meaning: m.prediction === "x0" ? "the student's one-step estimate of the clean latent x0 at (x_s, s) (its flow velocity is v = (x_s − x0)/s)"
      : m.noiseAt === 1 ? "the student's flow velocity v at (x_s, s); its one-step estimate of the clean latent is x0 = x_s − s·v (one flow-Euler step from s to 0)"
      : "the student's velocity in the teacher's own time t = 1 − s (noise at t = 0), which is −v for the flow velocity v at (x_s, s); its one-step estimate of the clean latent is x0 = x_s − s·v",
    sampling: "1 step: x0 = noise − v(noise, s = 1). n steps: at each flow time s_i of flow_times, x0 = x_s − s_i·v; then re-noise (not an Euler step): ε̂ = (x_s − (1 − s_i)·x0)/s_i, the noise x0 implies, n = eta·z + √(1 − eta²)·ε̂ with z fresh unit noise, x_s(i+1) = (1 − s(i+1))·x0 + s(i+1)·n (eta = 1: fresh noise only). web/tbcm-generator.js's loadBundleGenerator does this",
    flow_times: { 1: flowTimes(1), 2: flowTimes(2), 4: flowTimes(4) },
    eta: cfg.eval.eta,
    // what a program needs to run it without reading teacher.json (web/tbcm-generator.js)
    roles: { latent: m.inputs.latent, time: m.inputs.time, condition: [...m.inputs.condition], ...(m.inputs.guidance ? { guidance: m.inputs.guidance } : {}) },
    // the constant inputs: each from the table tensor of its name, repeated over the batch where its shape starts with "batch"
    // (the file reads them: other values change its output as they change the teacher's)
    constant_inputs: Object.fromEntries(m.inputs.constant.map((name) => [name, {
      shape: shapeOf(name, T).map((d, i) => (i === 0 && typeof specOf(name).shape[0] !== "number" && specOf(name).shape.length > 0 ? "batch" : d)),
      ...(inputTypes[name] ? { type: inputTypes[name] } : {}),
    }])),
    // the guidance input (if any) takes guidance_input_scale · w
    guidance_input_scale: m.guidanceInputScale,
    latent_shape: [...b.manifest.latentShape],
    time_scale: m.timeScale,
    // 0: the time input is time_scale·(1 − s) and the output −v (a program converts, as web/tbcm-generator.js does)
    noise_at: m.noiseAt,
    // "x0": the output is the clean latent itself
    prediction: m.prediction,
    condition_tensors: Object.fromEntries(m.inputs.condition.map((name, k) => [name, b.table.parts[k].name])),
    // null: an unconditional student, whose one "prompt" is the empty one
    prompt_embeddings: table,
    unconditional: isUnconditional(b.manifest),
    ...(decoder ? {
      vae_decoder: {
        file: decoder.file, input: decoder.input, output: decoder.output, output_range: [...decoder.outputRange], ...decoderTypes,
        latent_scaling_factor: b.manifest.latentScalingFactor, latent_shift_factor: b.manifest.latentShiftFactor,
      },
    } : {}),
    guidance: isUnconditional(b.manifest) ? "none: the teacher is unconditional" : m.inputs.guidance ? `an input, as the teacher's: "${m.inputs.guidance}" = ${m.guidanceInputScale}·w (the student was distilled over ${cfg.guidance.join(", ")}; guidance_scale is the default)`
      : guidanceConditioned(b) ? `baked in: ${guidance} (the student was distilled over ${cfg.guidance.join(", ")})` : `the student was distilled at guidance ${guidance} only`,
    guidance_scale: guidance,
    trigflow_two_step_mid: cfg.eval.twoStepMid,
    op_counts: lowered.opCounts,
    // the batch the file was traced at (its matrix products' FLOPs are counted there)
    trace_batch: T,
    matmul_flops_at_trace_batch: lowered.matmulFlops,
    requested_batch: o.batch,
  };
  writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/**
 * Runs the file (`model`, batch axis symbolic, traced at `traced`) at each of checkBatches on the
 * same inputs as the student traced at exactly that batch (`fixedAt`), both in onnxruntime: a
 * difference is a one-line error, and nothing is written.
 */
async function checkOtherBatches(b: LoadedBundle, model: Uint8Array, traced: number, fixedAt: (B: number) => Uint8Array, guidance: number, tolerance: number): Promise<void> {
  const output = b.manifest.transformer.output;
  const refuse = (B: number, what: string) => new Error(`the exported student ${what} at batch ${B} (it was traced at batch ${traced}): the teacher computes a value from its batch size that the export fixes (please report it with the teacher's operator list; \`tbcm sample\` draws from the run at any batch)`);
  const file = await OnnxFile.open(model);
  try {
    for (const B of checkBatches(traced)) {
      const idx = globalThis.Array.from({ length: B }, (_, i) => i % b.table.prompts.length);
      const s = Float32Array.from({ length: B }, (_, i) => 0.9 - (0.6 * i) / B);
      const feeds = teacherFeeds(b, normal(key(B), B * b.dim), s, { data: tableRows(b.table, idx), shape: [B, ...b.table.shape] }, guidance);
      const fixed = await OnnxFile.open(fixedAt(B));
      let want: HostTensor, got: HostTensor;
      try {
        [want] = await fixed.run(feeds, [output]);
      } finally {
        await fixed.release();
      }
      try {
        [got] = await file.run(feeds, [output]);
      } catch (e) {
        throw refuse(B, `cannot run (onnxruntime: ${String((e as Error).message).split("\n")[0].slice(0, 160)})`);
      }
      if (got.shape.join() !== want.shape.join()) throw refuse(B, `answers with shape [${got.shape}], not [${want.shape}],`);
      let num = 0, den = 0;
      for (let i = 0; i < want.data.length; i++) {
        num += (got.data[i] - want.data[i]) ** 2;
        den += want.data[i] ** 2;
      }
      const e = Math.sqrt(num / Math.max(den, 1e-30));
      if (!(e <= tolerance)) throw refuse(B, `differs from the student by ${e.toExponential(2)} (relative)`);
    }
  } finally {
    await file.release();
  }
}
