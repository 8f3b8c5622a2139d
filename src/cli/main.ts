/**
 * The `tbcm` command line: a thin layer over the library. Errors the user can fix are printed
 * as one line (exit 1); `--debug` shows the stack.
 */
import "../numerics/threads.ts"; // must come before anything loads jax-js
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isGuidanceInterval, DEVICES, type Device, type ExecutorKind, checkExecutorDevice } from "../config/schema.ts";
import { ROUTE_SHIFT, ROUTE_STEPS, MULTI_STEP_RULES, type MultiStepRule } from "../config/defaults.ts";
import * as L from "../config/limits.ts";
import { watchMemory } from "./memoryWatch.ts";

/** What to lower when a command nears the memory limit (memoryWatch.ts). */
const MEMORY_HINT = "a training step's memory grows with its pairs (train.prompts_per_step × (route.steps − 1)) and an evaluation's with "
  + "eval.samples: lower train.prompts_per_step (a big teacher: 1) or eval.samples, or --n for tbcm sample (TBCM_MEMORY_LIMIT_MB sets the limit)";

/** Student steps baked into one exported generator: each is a whole network pass in the file. */
const MAX_EXPORT_STEPS = 64;

const USAGE = `usage:
  tbcm distill --config <yaml> --out <dir> [--resume] [--device cpu|webgpu|cuda]   distil a student (method tbcm or scm)
  tbcm train-vae --config <stack yaml> [--resume]        train the default VAE (configs/fmnist-stack.yaml)
  tbcm train-teacher --config <stack yaml> [--resume]    train the default text encoder + DiT teacher
  tbcm train-evaluator --config <stack yaml> [--resume]  train the evaluator (classifier for FD and prompt accuracy)
  tbcm eval-teacher --config <stack yaml>                evaluate the shipped teacher again, rewrite its model card
  tbcm train-teacher --config <gmm yaml> --out <file>    fit the student network to the analytic teacher (a teacher copy)
  tbcm sample (--run <dir> | --model teacher) --prompt "…" [--prompt …] [--n 8] [--steps N] [--guidance 4.5]
              [--seed 0] [--eta E] [--sampler euler|trigflow] [--guidance-interval 0,0.5 [--guidance-ramp 0.1]] [--device D] --out <file.png>
                                                         images: one row per prompt, n columns; a student re-noises
                                                         with fresh-noise share --eta (default: its config's eval.eta);
                                                         the teacher guides at flow times in --guidance-interval
                                                         (0,1 = everywhere; default 0,0.5 with a logistic edge of
                                                         width --guidance-ramp 0.1)
  tbcm export --run <dir> --out <dir> [--batch 1] [--int8] [--steps 1] [--eta E]
                                                         the student as ONNX files + manifest: the generator runs
                                                         --steps student steps (--int8: its matrix products in int8,
                                                         1.5–1.7× faster batched)
  tbcm export-teacher --out <dir>                       the shipped teacher as a teacher bundle (teacher.json, transformer.onnx,
                                                         prompt_embeddings.safetensors, vae_decoder.onnx): distil it with
                                                         teacher: { kind: onnx, dir: <dir> } (README "Distil your own teacher")
  tbcm check-bundle --dir <bundle> [--prompts <file>] [--device D]
                                                         a teacher bundle as a run would check it, in seconds: the
                                                         manifest, the import against onnxruntime on the file, the
                                                         conventions at pure noise, whether its student will export,
                                                         one teacher step's time, the decoder
  tbcm serve --dir <export dir> [--port 8080]           a browser demo of an export (web/index.html, onnxruntime-web)
  tbcm eval --run <dir> [--json] [--recompute [--samples N]]  print a run's metrics (--recompute [--two-step-mid T] [--eta E] [--multi-step shifted|from_mid|tail] [--device D]: evaluate again)
  tbcm config [--config <yaml>]                         every distill config key: its value or default, what it accepts
  tbcm schedule [--shift 2.5] [--steps 16] [--json]      print the teacher route (TrigFlow angles)
config key executor: onnx (default, ONNX Runtime) or jax (jax-js jit) runs the training step and teacher pass
config key device / --device: cpu (default), webgpu (a Vulkan driver; software: scripts/lavapipe.sh) or cuda (ONNXRUNTIME_NODE_INSTALL=cuda12) for ONNX Runtime
  (distill, sample, eval --recompute, train-vae / train-teacher / train-evaluator, eval-teacher; stack configs take the key device too)
environment: TBCM_THREADS=<n> threads for jax-js's kernels and ONNX Runtime (default: 1 for jax-js, every core for ONNX Runtime)
             TBCM_ORT_VERBOSE=1 ONNX Runtime's verbose log (which provider each node runs on) on stderr
             TBCM_MEMORY_LIMIT_MB=<n> the memory a command may use (default: the machine's or the container's);
               past 90 % of it the command stops with one line saying what to lower`;

class UsageError extends Error {}

/** An error as one printable line of bounded length: whatever an input smuggled into it (a long prompt, binary bytes) stays readable. */
function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  const line = message.split("\n")[0].replace(/[\u0000-\u001f\u007f-\u009f]/g, "\uFFFD");
  return line.length > 400 ? `${line.slice(0, 399)}…` : line;
}

/** Every option's value, as the commands read them (each command's parse admits only its own). */
type AllValues = {
  config?: string; out?: string; resume?: boolean; run?: string; json?: boolean; shift?: string; steps?: string; debug?: boolean;
  batch?: string; prompt?: string[]; model?: string; n?: string; guidance?: string; seed?: string; sampler?: string; recompute?: boolean;
  int8?: boolean; samples?: string; "two-step-mid"?: string; eta?: string; "multi-step"?: string; "guidance-interval"?: string; "guidance-ramp"?: string;
  dir?: string; port?: string; device?: string; prompts?: string;
};

const text = { type: "string" } as const;
const flag = { type: "boolean" } as const;
/** Each command's options: an option another command takes is an error here, not silently ignored. */
const COMMAND_OPTIONS = {
  distill: { config: text, out: text, resume: flag, device: text },
  "train-vae": { config: text, resume: flag, device: text },
  "train-evaluator": { config: text, resume: flag, device: text },
  "train-teacher": { config: text, resume: flag, out: text, device: text },
  "eval-teacher": { config: text, device: text },
  sample: {
    run: text, model: text, prompt: { type: "string", multiple: true }, n: text, steps: text, guidance: text, seed: text,
    eta: text, sampler: text, "guidance-interval": text, "guidance-ramp": text, out: text, device: text,
  },
  export: { run: text, out: text, batch: text, int8: flag, steps: text, eta: text },
  "export-teacher": { out: text },
  "check-bundle": { dir: text, prompts: text, device: text },
  serve: { dir: text, port: text },
  eval: { run: text, json: flag, recompute: flag, samples: text, "two-step-mid": text, eta: text, "multi-step": text, device: text },
  config: { config: text },
  schedule: { shift: text, steps: text, json: flag },
} as const;
type Command = keyof typeof COMMAND_OPTIONS;

function parseOptions<C extends Command>(command: C, args: string[]) {
  try {
    return parseArgs({ args, options: { ...COMMAND_OPTIONS[command], debug: flag }, strict: true });
  } catch (e) {
    const message = (e as Error).message.split("\n")[0];
    throw new UsageError(/Unknown option/.test(message) ? `${message.replace(/\. To specify.*$/, "")}: tbcm ${command} does not take it` : message);
  }
}

/** A number option, or a usage error naming it. */
function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got "${value}"`);
  return n;
}

/** A whole-number option from `min` to `max` (every size is bounded before anything is allocated). */
function countOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  const n = numberOption(name, value, fallback);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} takes a whole number from ${min} to ${max}, got ${value}`);
  return n;
}

/** `--eta E`: the student's fresh-noise share when re-noising, 0 ≤ E ≤ 1 (undefined when not given). */
function etaOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const eta = numberOption("eta", value, 1);
  if (eta < 0 || eta > 1) throw new UsageError(`--eta is a share of fresh noise in [0, 1] (1: the spec's sampler), got ${eta}`);
  return eta;
}

/** A config with `--device` (when given) in place of its `device`. */
function withDevice<C extends { executor: ExecutorKind; device: Device }>(cfg: C, value: string | undefined): C {
  const device = deviceOption(value);
  if (device === undefined) return cfg;
  checkExecutorDevice(cfg.executor, device, "--device");
  return { ...cfg, device };
}

/** `--device D`: ONNX Runtime's device (undefined when not given). */
function deviceOption(value: string | undefined): Device | undefined {
  if (value === undefined) return undefined;
  if (!(DEVICES as readonly string[]).includes(value)) throw new UsageError(`--device is one of ${DEVICES.join(", ")}, got "${value}"`);
  return value as Device;
}

/** `--guidance-interval lo,hi`: two flow times 0 ≤ lo < hi ≤ 1, or a usage error. */
function intervalOption(value: string): number[] {
  const v = value.split(",").map(Number);
  if (!isGuidanceInterval(v)) throw new UsageError(`--guidance-interval expects two flow times lo,hi with 0 ≤ lo < hi ≤ 1 (1 = pure noise), e.g. 0,0.6; got "${value}"`);
  return v;
}

/**
 * The first Ctrl-C (or SIGTERM, as sent by `kill`, job schedulers and containers) asks the loop to
 * finish its step and checkpoint; a second one aborts. Once the student is saved (`evaluating`),
 * the first one stops the final evaluation at once: it can be run again with `tbcm eval --recompute`.
 */
function stopOnSignals(evaluationNote = ""): { stopRequested: () => boolean; evaluating: () => void } {
  let stop = false, evaluating = false;
  const onSignal = (signal: string) => {
    if (evaluating) {
      process.stderr.write(`\n${signal}: evaluation stopped; the student is saved${evaluationNote}\n`);
      process.exit(130);
    }
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write(`\n${signal}: finishing this step and writing a checkpoint (again to abort)\n`);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => onSignal(signal));
  return { stopRequested: () => stop, evaluating: () => { evaluating = true; } };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || ["help", "--help", "-h"].includes(command) || rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(COMMAND_OPTIONS, command)) throw new UsageError(`unknown command "${command}"`);
  const { values } = parseOptions(command as Command, rest) as { values: AllValues };
  // one line instead of the kernel's silent kill when a command outgrows the machine's memory
  watchMemory(MEMORY_HINT);
  switch (command as Command) {
    case "check-bundle": {
      if (!values.dir) throw new UsageError("check-bundle needs --dir <bundle> (a folder with teacher.json)");
      const { checkBundle } = await import("../bundle/check.ts");
      const r = await checkBundle(values.dir, { promptsFile: values.prompts, device: deviceOption(values.device), say: (line) => process.stderr.write(`${line}\n`) });
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      console.log(JSON.stringify(r, null, 2));
      return 0;
    }
    case "serve": {
      if (!values.dir) throw new UsageError("serve needs --dir <export dir> (written by tbcm export)");
      const port = numberOption("port", values.port, 8080);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port takes a port number, got ${port}`);
      const { serveExport } = await import("./serve.ts");
      const server = await serveExport(values.dir, port);
      const address = server.address();
      process.stderr.write(`serving the demo of "${values.dir}" at http://127.0.0.1:${typeof address === "object" && address ? address.port : port}/ (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => process.once("SIGINT", () => {
        server.close(() => resolve());
        server.closeAllConnections(); // a browser's keep-alive connections would hold close() open
      }));
      return 0;
    }
    case "config": {
      const { describeConfig, readYaml } = await import("../config/schema.ts");
      const raw = values.config ? readYaml(values.config) : {};
      if (values.config) {
        const { isStackConfig } = await import("../config/stack.ts");
        if (isStackConfig(raw)) throw new UsageError("config describes distill configs; a stack config (kind: stack) is for train-vae / train-teacher / train-evaluator");
      }
      process.stdout.write(`# tbcm distill config: every key with ${values.config ? `the value of ${values.config} ("set") or ` : ""}its default, and what it accepts\n`);
      process.stdout.write(describeConfig(raw));
      return 0;
    }
    case "schedule": {
      const { routeAngles } = await import("../method/route.ts");
      const route = routeAngles(numberOption("shift", values.shift, ROUTE_SHIFT), countOption("steps", values.steps, ROUTE_STEPS, 2, L.MAX_ROUTE_STEPS));
      console.log(values.json ? JSON.stringify(route) : route.map((t) => t.toFixed(6)).join("\n"));
      return 0;
    }
    case "distill": {
      if (!values.config || !values.out) throw new UsageError("distill needs --config <yaml> and --out <dir>");
      const { loadConfig } = await import("../config/schema.ts");
      const cfg = withDevice(loadConfig(values.config), values.device);
      const { distill } = await import("../run/distill.ts");
      const result = await distill(cfg, values.out, {
        resume: values.resume,
        progress: (line) => process.stderr.write(line + "\n"),
        ...stopOnSignals(` (evaluate it with: tbcm eval --run ${values.out} --recompute)`),
      });
      if (result.interrupted) return 130;
      console.log(JSON.stringify(result.metrics, null, 2));
      return 0;
    }
    case "eval-teacher": {
      if (!values.config) throw new UsageError("eval-teacher needs --config <stack yaml>");
      const { readYaml } = await import("../config/schema.ts");
      const { isStackConfig, parseStackConfig } = await import("../config/stack.ts");
      const raw = readYaml(values.config);
      if (!isStackConfig(raw)) throw new UsageError("eval-teacher needs a stack config (kind: stack), e.g. configs/fmnist-stack.yaml");
      const { evaluateTeacher } = await import("../stack/teacher.ts");
      console.log(JSON.stringify(await evaluateTeacher(withDevice(parseStackConfig(raw), values.device), (line) => process.stderr.write(line + "\n")), null, 2));
      return 0;
    }
    case "train-vae":
    case "train-evaluator":
    case "train-teacher": {
      if (!values.config) throw new UsageError(`${command} needs --config <yaml>`);
      const { readYaml } = await import("../config/schema.ts");
      const { isStackConfig, parseStackConfig } = await import("../config/stack.ts");
      const raw = readYaml(values.config);
      if (isStackConfig(raw)) {
        const cfg = withDevice(parseStackConfig(raw), values.device);
        const stop = stopOnSignals().stopRequested;
        const opts = { resume: values.resume, say: (line: string) => process.stderr.write(line + "\n"), stopRequested: stop, command: `tbcm ${command} --config ${values.config}` };
        const train = command === "train-vae" ? (await import("../stack/vae.ts")).trainVae
          : command === "train-teacher" ? (await import("../stack/teacher.ts")).trainTeacher
          : (await import("../stack/evaluator.ts")).trainEvaluator;
        const result = await train(cfg, opts);
        if (result.interrupted) {
          process.stderr.write(`stopped; checkpoint written — continue with --resume\n`);
          return 130;
        }
        console.log(JSON.stringify(result));
        return 0;
      }
      if (command !== "train-teacher") throw new UsageError(`${command} needs a stack config (kind: stack), e.g. configs/fmnist-stack.yaml`);
      if (!values.config || !values.out) throw new UsageError("train-teacher needs --config <yaml> and --out <file.safetensors>");
      const { loadConfig, configOf } = await import("../config/schema.ts");
      const cfg = configOf(loadConfig(values.config), "gmm");
      const { pretrainTeacherCopy } = await import("../gmm/pretrain.ts");
      const r = await pretrainTeacherCopy(cfg, values.out, (line) => process.stderr.write(line + "\n"));
      console.log(JSON.stringify({ out: values.out, final_mse: r.finalLoss, relative_mse: r.relativeError, seconds: Number(r.seconds.toFixed(1)) }));
      return 0;
    }
    case "export": {
      if (!values.run || !values.out) throw new UsageError("export needs --run <dir> and --out <dir>");
      const { exportStudent } = await import("../run/export.ts");
      const steps = countOption("steps", values.steps, 1, 1, MAX_EXPORT_STEPS);
      const m = await exportStudent(values.run, values.out, countOption("batch", values.batch, 1, 1, L.MAX_BATCH), { int8: values.int8 ?? false, steps, eta: etaOption(values.eta) });
      console.log(JSON.stringify({ out: values.out, manifest: join(values.out, "manifest.json"), inputs: m.inputs }));
      return 0;
    }
    case "export-teacher": {
      if (!values.out) throw new UsageError("export-teacher needs --out <dir>");
      const { exportTeacherBundle } = await import("../bundle/exportTeacher.ts");
      await exportTeacherBundle(values.out);
      console.log(JSON.stringify({ out: values.out, manifest: join(values.out, "teacher.json") }));
      return 0;
    }
    case "sample": {
      if (!values.out || !values.prompt?.length) throw new UsageError("sample needs --prompt \"…\" and --out <file.png>");
      if (!values.run && values.model !== "teacher") throw new UsageError("sample needs --run <dir> (a distilled student) or --model teacher");
      if (values.run && (values["guidance-interval"] ?? values["guidance-ramp"]) !== undefined) throw new UsageError("--guidance-interval and --guidance-ramp are for --model teacher: a student's guidance schedule is set by its distillation config");
      if (!values.run && values.eta !== undefined) throw new UsageError("--eta is for a student (--run <dir>): the teacher samples its ODE without re-noising");
      if (values["guidance-ramp"] !== undefined && values["guidance-interval"] === undefined) throw new UsageError("--guidance-ramp needs --guidance-interval lo,hi");
      const ramp = numberOption("guidance-ramp", values["guidance-ramp"], 0);
      if (ramp < 0) throw new UsageError(`--guidance-ramp is a width ≥ 0, got ${ramp}`);
      if (values.sampler && values.sampler !== "euler" && values.sampler !== "trigflow") throw new UsageError(`--sampler is euler or trigflow, got "${values.sampler}"`);
      const device = deviceOption(values.device);
      const n = countOption("n", values.n, 8, 1, L.MAX_EVAL_SAMPLES);
      const steps = values.steps === undefined ? undefined : countOption("steps", values.steps, 1, 1, L.MAX_ROUTE_STEPS);
      if (n * values.prompt.length > L.MAX_EVAL_SAMPLES) throw new UsageError(`--n × prompts is ${n * values.prompt.length} images; sample at most ${L.MAX_EVAL_SAMPLES} at once`);
      const { sampleImages } = await import("../run/sample.ts");
      const { writeImageGrid } = await import("../data/png.ts");
      const prompts = values.prompt.flatMap((p) => Array.from({ length: n }, () => p));
      const r = await sampleImages({
        run: values.run, prompts, steps, guidance: values.guidance === undefined ? undefined : numberOption("guidance", values.guidance, 4.5),
        seed: numberOption("seed", values.seed, 0), eta: etaOption(values.eta), sampler: values.sampler as "euler" | "trigflow" | undefined,
        guidanceSchedule: values["guidance-interval"] === undefined ? undefined : { interval: intervalOption(values["guidance-interval"]), ramp },
        device,
      });
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      writeImageGrid(values.out, r.pixels, { rows: values.prompt.length, cols: n, height: r.height, width: r.width, channels: r.channels });
      console.log(JSON.stringify({ out: values.out, images: prompts.length }));
      return 0;
    }
    case "eval": {
      if (!values.run) throw new UsageError("eval needs --run <dir>");
      if (!values.recompute && values.device !== undefined) throw new UsageError("--device is for eval --recompute (printing the metrics runs nothing)");
      if (values.recompute) {
        const { evaluateRun } = await import("../run/distill.ts");
        const samples = values.samples === undefined ? undefined : countOption("samples", values.samples, 1000, 2, L.MAX_EVAL_SAMPLES);
        const mid = values["two-step-mid"] === undefined ? undefined : numberOption("two-step-mid", values["two-step-mid"], 1);
        const eta = etaOption(values.eta);
        const rule = values["multi-step"];
        if (rule !== undefined && !(MULTI_STEP_RULES as readonly string[]).includes(rule)) {
          throw new UsageError(`--multi-step is one of ${MULTI_STEP_RULES.join(", ")}, got "${rule}"`);
        }
        await evaluateRun(values.run, {
          ...(samples === undefined ? {} : { samples }), ...(mid === undefined ? {} : { twoStepMid: mid }), ...(eta === undefined ? {} : { eta }),
          ...(rule === undefined ? {} : { multiStep: rule as MultiStepRule }),
        },
          (line) => process.stderr.write(line + "\n"), deviceOption(values.device));
      }
      let text: string;
      try {
        text = readFileSync(join(values.run, "metrics.json"), "utf8");
      } catch {
        throw new UsageError(`no metrics.json in "${values.run}": is it a finished run directory?`);
      }
      const metrics = JSON.parse(text);
      if (values.json) console.log(JSON.stringify(metrics));
      else {
        const { imageSummary } = await import("../eval/report.ts");
        const summary = imageSummary(metrics).slice(2); // without the markdown heading
        console.log([...summary, ...Object.entries(metrics).map(([k, v]) => `${k.padEnd(28)} ${v}`)].join("\n"));
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    if (process.argv.includes("--debug")) console.error(err);
    else if (err instanceof UsageError) console.error(`tbcm: ${oneLine(err.message)}\n${USAGE}`);
    else console.error(`tbcm: ${oneLine(String(err?.message ?? err))}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
