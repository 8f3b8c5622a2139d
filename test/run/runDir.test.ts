import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync, readFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { RunDir } from "../../src/train/runDir.ts";
import { configToRaw, configFromRun, parseConfig, loadConfig } from "../../src/config/schema.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-rundir-");
const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;

test("a run directory is locked while a process owns it; a lock whose process is gone is taken over", () => {
  const d = join(dir, "a");
  const run = RunDir.claim(d, false);
  assert.throws(() => RunDir.claim(d, false), new RegExp(`"${d}" is in use by another tbcm process \\(pid ${process.pid}\\)`));
  run.release();
  RunDir.claim(d, false).release();
  // a stale lock: the pid of a process that has exited
  const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
  writeFileSync(join(d, "run.lock"), gone);
  const again = RunDir.claim(d, false);
  assert.equal(readFileSync(join(d, "run.lock"), "utf8"), String(process.pid));
  again.release();
  assert.equal(existsSync(join(d, "run.lock")), false);
});

test("--out that is a file, a run directory that already holds a run, --resume of nothing: one-line errors", () => {
  const f = join(dir, "file");
  writeFileSync(f, "x");
  assert.throws(() => RunDir.claim(f, false), /--out ".*file" is a file, not a directory/);
  const d = join(dir, "b");
  mkdirSync(d);
  assert.throws(() => RunDir.claim(d, true), /no checkpoint in .*nothing to resume/);
  writeFileSync(join(d, "checkpoint.safetensors"), "");
  assert.throws(() => RunDir.claim(d, false), /already holds a run; pass --resume/);
  assert.equal(existsSync(join(d, "run.lock")), false, "a refused claim leaves no lock");
});

test("resume keeps the log up to the checkpoint: a torn last line is dropped, any other bad line stops it with the log untouched", () => {
  const d = join(dir, "c");
  const run = RunDir.claim(d, false);
  run.startLog();
  for (const step of [0, 10, 20, 30]) run.appendLog({ step, loss: step / 10 });
  writeFileSync(run.logPath, readFileSync(run.logPath, "utf8") + '{"step": 40, "lo');
  assert.deepEqual(run.keepLogUpTo(20), { dropped: 1, torn: true });
  assert.deepEqual(readFileSync(run.logPath, "utf8").trim().split("\n").map((l) => JSON.parse(l).step), [0, 10, 20]);
  const damaged = '{"step": 0}\nnot json\n{"step": 10}\n';
  writeFileSync(run.logPath, damaged);
  assert.throws(() => run.keepLogUpTo(5), /line 2 of .*log\.jsonl" is not a log record; the log was left as it is/);
  assert.equal(readFileSync(run.logPath, "utf8"), damaged);
  run.release();
});

test("config.json is the config in its YAML form: parseConfig reads it back to the same config, for every shipped config", () => {
  for (const path of ["configs/gmm.yaml", "configs/fmnist-tbcm.yaml", "configs/fmnist-tbcm-everywhere.yaml", "configs/fmnist-tbcm-long.yaml", "configs/fmnist-scm.yaml", "configs/bundle-tbcm.yaml", "test/fixtures/tiny.yaml"]) {
    const cfg = loadConfig(path);
    const raw = JSON.parse(JSON.stringify(configToRaw(cfg)));
    assert.deepEqual(parseConfig(raw), cfg, path);
    assert.deepEqual(configFromRun(raw, "x/config.json"), cfg);
  }
  assert.throws(() => configFromRun({ teacher: { kind: "mystery" } }, "x/config.json"), /"x\/config\.json" is not the config of this tbcm's runs: config key "teacher\.kind": expected one of gmm, stack/);
});

test("two tbcm distill processes on one --out: the second is refused while the first runs, and the first finishes alone", async () => {
  const out = join(dir, "twice");
  const config = join(dir, "slow.yaml");
  writeFileSync(config, readFileSync(new URL("../fixtures/tiny.yaml", import.meta.url), "utf8")
    .replace(/^train: .*$/m, "train: { steps: 200, prompts_per_step: 2, grad_clip: 0.1, log_every: 1, eval_every: 1000, checkpoint_every: 50 }"));
  const first = spawn(process.execPath, [bin, "distill", "--config", config, "--out", out], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const started = new Promise<void>((resolve) => first.stderr.setEncoding("utf8").on("data", (c: string) => { stderr += c; if (/step \d+\/200/.test(stderr)) resolve(); }));
  const done = new Promise<number | null>((resolve) => first.on("close", resolve));
  await started;
  const second = spawnSync(process.execPath, [bin, "distill", "--config", config, "--out", out, "--resume"], { encoding: "utf8" });
  assert.equal(second.status, 1);
  assert.match(second.stderr, /is in use by another tbcm process \(pid \d+\)/);
  assert.equal(await done, 0);
  const steps = readFileSync(join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).step).filter((s) => s !== undefined);
  assert.deepEqual(steps.filter((s, i) => i > 0 && s <= steps[i - 1] && s !== steps[i - 1]), [], "the log reads as one run");
  assert.equal(existsSync(join(out, "run.lock")), false);
});
