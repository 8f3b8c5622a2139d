/**
 * `tbcm check-bundle`: what a bundle run checks before it trains, and what it will distil, in
 * seconds and without a run directory — the first thing to run on a teacher of your own. It loads
 * the bundle (every manifest, file and table mismatch is a one-line error), runs the teacher's
 * checks (problem.ts `checkTeacher`: finite on every prompt, the import against onnxruntime on the
 * file, the conventions at pure noise), exports the student a run starts from in the teacher's
 * contract and runs that at other batch sizes (as `tbcm export` will), times one teacher step and
 * decodes one latent.
 */
import { tree } from "@jax-js/jax";
import { type BundleConfig, type Device, type ExecutorKind, executorOf, parseConfig } from "../config/schema.ts";
import { normal, key } from "../numerics/random.ts";
import { BUNDLE_ROWS, loadBundle } from "./load.ts";
import { hasDecoder, loadBundleDecoder } from "./decoder.ts";
import { isUnconditional } from "./manifest.ts";
import { guidanceConditioned } from "./student.ts";
import { bundleConfig, bundlePrompts, eulerStepProgram, promptConditions } from "./problem.ts";
import { checkTeacher } from "./parity.ts";
import { initialBundleStudent } from "./student.ts";
import { studentInContract } from "./export.ts";

/** Rows of the timed teacher step: a training step's teacher pass runs batches of about this size. */
const TIMED_ROWS = 8;

export type BundleCheck = {
  readonly dir: string;
  readonly parameters: number;
  readonly latentShape: readonly number[];
  readonly inputs: readonly { readonly name: string; readonly dtype: string; readonly shape: readonly (number | string | null)[] }[];
  readonly prompts: number;
  readonly unconditional: boolean;
  /** The tensor the student's guidance embedding is added to ("" for none; "auto" resolved). */
  readonly timeEmbedding: string;
  readonly guidanceConditioned: boolean;
  readonly guidanceScales: readonly number[];
  /** tbcm's teacher against onnxruntime on the file, relative (NaN: not checked); and the noise spread (parity.ts). */
  readonly teacherImportRelError: number;
  readonly teacherNoiseSpread: number;
  /** One guided teacher step of TIMED_ROWS samples (CFG: twice the rows), median of 3, ms. */
  readonly teacherStepMs: number;
  readonly decoder: { readonly channels: number; readonly height: number; readonly width: number } | null;
  /** Whether the student a run starts from exports in the teacher's contract at every batch size (export.ts `studentInContract`). */
  readonly studentExports: boolean;
  readonly warnings: readonly string[];
};

export type CheckBundleOptions = {
  readonly promptsFile?: string; readonly executor?: ExecutorKind; readonly device?: Device;
  /** Progress lines (a big teacher takes a while to import and compile). */
  readonly say?: (line: string) => void;
};

/** Checks the bundle in `dir` as a run with `prompts_file` (default: every prompt of its table) would. */
export async function checkBundle(dir: string, o: CheckBundleOptions = {}): Promise<BundleCheck> {
  const cfg = bundleConfig(parseConfig({
    method: "tbcm", teacher: { kind: "onnx", dir }, prompts_file: o.promptsFile ?? "", executor: o.executor ?? "onnx", device: o.device ?? "cpu",
  }) as BundleConfig);
  const t0 = performance.now();
  const say = (what: string) => o.say?.(`check-bundle: ${what} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  say("importing the denoiser");
  const b = loadBundle(dir, cfg.executor);
  const prompts = bundlePrompts(cfg, b);
  const hostConditions = promptConditions(b, prompts);
  const params = b.paramList();
  const euler = eulerStepProgram(executorOf(cfg), b, params);
  try {
    say(`checking the teacher on ${prompts.length} prompt${prompts.length === 1 ? "" : "s"}: finite, against onnxruntime on the file, at pure noise`);
    const checks = await checkTeacher(euler, b, cfg, prompts, hostConditions);
    // what `tbcm export` will do with the student, tried on the student a run starts from (the teacher's weights)
    say("exporting a student in the teacher's contract and running it at other batch sizes");
    const m = b.manifest;
    const student = initialBundleStudent(key(0), b, m.transformer.timeEmbedding ? b.timeEmbeddingWidth() : 0);
    let studentExports = true;
    const warnings = [...checks.warnings];
    try {
      await studentInContract(b, student, cfg.eval.guidance);
    } catch (e) {
      studentExports = false;
      warnings.push(`a run will train, but its student will not export: ${(e as Error).message.split("\n")[0]}`);
    } finally {
      tree.dispose(student);
    }
    say("timing one teacher step");
    const n = TIMED_ROWS, d = b.dim, idx = Array.from({ length: n }, (_, i) => i % prompts.length);
    const col = (v: number) => ({ data: new Float32Array(n).fill(v), shape: [n, 1] });
    const inputs = [{ data: normal(key(1), n * d), shape: [n, d] }, col(0.5), col(0.4), hostConditions(idx), hostConditions(idx.map(() => -1)), col(b.manifest.defaultGuidance)];
    const times: number[] = [];
    for (let k = 0; k < 4; k++) {
      const t0 = performance.now();
      await euler.run(inputs);
      if (k > 0) times.push(performance.now() - t0); // the first call compiles
    }
    let decoder: BundleCheck["decoder"] = null;
    if (hasDecoder(b)) {
      say("decoding one latent");
      const dec = loadBundleDecoder(b, executorOf(cfg));
      try {
        const img = await dec.decode(new Float32Array(d), 1, BUNDLE_ROWS);
        decoder = { channels: img.channels, height: img.height, width: img.width };
      } finally {
        await dec.dispose();
      }
    }
    return {
      dir, parameters: b.paramNames.reduce((s, k) => s + b.transformer.params[k].data.length, 0), latentShape: m.latentShape,
      inputs: b.transformer.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape })), prompts: prompts.length,
      unconditional: isUnconditional(m), timeEmbedding: m.transformer.timeEmbedding, guidanceConditioned: guidanceConditioned(b), guidanceScales: cfg.guidance,
      teacherImportRelError: checks.importError, teacherNoiseSpread: checks.noiseSpread, teacherStepMs: times.sort((a, c) => a - c)[1],
      decoder, studentExports, warnings,
    };
  } finally {
    await euler.dispose();
    tree.dispose(params);
  }
}
