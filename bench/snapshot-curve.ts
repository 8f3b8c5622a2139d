/**
 * FD and prompt accuracy against training time (issue #13): the students a run kept while it
 * trained (`train.snapshot_every`: snapshots/student-<step>.safetensors), or copies of its
 * checkpoint, are measured one by one with the run's own evaluation (`evaluateRun`: the same eval
 * prompts, noises, sampler and teacher). Of a checkpoint, the parameter average (train.ema) is the
 * student when it holds one, else its parameters (`--raw` takes the parameters always). Each
 * snapshot's evaluation — metrics, report and grids — is kept in `<snapshot>.eval/`.
 *
 *   npx tsx bench/snapshot-curve.ts runs/long runs/long/snapshots/*.safetensors [--raw]
 */
import { parseArgs } from "node:util";
import { copyFileSync, mkdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { loadSafetensors, saveSafetensors, type HostTensor } from "../src/numerics/safetensors.ts";
import { evaluateRun } from "../src/run/distill.ts";
import { openRun } from "../src/run/open.ts";

const { values, positionals } = parseArgs({ options: { raw: { type: "boolean" } }, allowPositionals: true });
const [runDir, ...snapshots] = positionals;
if (!runDir || snapshots.length === 0) throw new Error("usage: snapshot-curve.ts RUN_DIR CHECKPOINT...");
const kind = openRun(runDir).kind.studentKind;
const log = readFileSync(join(runDir, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const timeAt = (step: number) => log.find((r) => r.step === step && typeof r.time_s === "number")?.time_s as number | undefined;

const rows: string[] = [];
for (const file of snapshots) {
  const { tensors, metadata } = loadSafetensors(file);
  const step = Number(metadata.step);
  const isStudent = metadata.kind !== undefined; // a kept student, else a checkpoint
  const prefix = isStudent ? "" : !values.raw && [...tensors.keys()].some((k) => k.startsWith("ema.")) ? "ema." : "params.";
  const student = new Map<string, HostTensor>();
  for (const [name, t] of tensors) if (name.startsWith(prefix)) student.set(name.slice(prefix.length), t);
  const dir = `${file}.eval`;
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(runDir, "config.json"), join(dir, "config.json"));
  if (!existsSync(join(dir, "metrics.json"))) {
    saveSafetensors(join(dir, "student.safetensors"), student, { config: metadata.config, step: String(step), kind });
    await evaluateRun(dir, {}, (line) => console.error(`[step ${step}] ${line}`));
  }
  const m = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8"));
  const f = (k: string, d = 1) => (typeof m[k] === "number" ? m[k].toFixed(d) : "—");
  const t = timeAt(step);
  rows.push(`| ${step} | ${t === undefined ? "—" : Math.round(t)} | ${isStudent ? "student" : prefix === "ema." ? "average" : "iterate"} | ${f("fd_student_1step")} / ${f("fd_student_2step")} / ${f("fd_student_4step")} | ${f("accuracy_student_1step", 3)} / ${f("accuracy_student_2step", 3)} / ${f("accuracy_student_4step", 3)} | ${f("consistency_rel_mse_1step", 3)} | ${f("fd_teacher_16step", 2)} / ${f("accuracy_teacher_16step", 3)} |`);
  console.log(rows.at(-1));
}
console.log(`\nrun ${runDir}\n`);
console.log("| step | train s | weights | FD 1 / 2 / 4 steps | accuracy 1 / 2 / 4 steps | 1-step consistency | teacher FD / accuracy |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
