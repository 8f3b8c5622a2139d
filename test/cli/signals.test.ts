import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSafetensors } from "../../src/numerics/safetensors.ts";
import { tempDir } from "../tempDir.ts";

const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;
const dir = tempDir("tbcm-signals-");
const config = join(dir, "run.yaml");
// the tiny analytic problem, long enough to be interrupted, a checkpoint every 20 steps
writeFileSync(config, readFileSync(new URL("../fixtures/tiny.yaml", import.meta.url), "utf8")
  .replace(/^train: .*$/m, "train: { steps: 300, prompts_per_step: 2, grad_clip: 0.1, log_every: 1, eval_every: 1000, checkpoint_every: 20 }"));

/** Starts `tbcm distill`, sends `signal` once stderr reports step `at`, resolves with the exit code and stderr. */
function distillUntil(out: string, at: number, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, "distill", "--config", config, "--out", out], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "", sent = false;
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      const m = [...stderr.matchAll(/step (\d+)\/300/g)].at(-1);
      if (!sent && m && Number(m[1]) >= at) {
        sent = true;
        child.kill(signal);
      }
    });
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

const student = (run: string) => loadSafetensors(join(run, "student.safetensors")).tensors;
const step = (run: string) => Number(loadSafetensors(join(run, "checkpoint.safetensors")).metadata.step);

test("SIGTERM checkpoints after the current step, SIGKILL loses only the steps since the last checkpoint; --resume then ends exactly where an uninterrupted run does", async () => {
  const whole = join(dir, "whole");
  assert.equal(spawnSync(process.execPath, [bin, "distill", "--config", config, "--out", whole]).status, 0);
  const expected = student(whole);

  const termed = join(dir, "termed");
  const t = await distillUntil(termed, 50, "SIGTERM");
  assert.equal(t.code, 130, t.stderr);
  assert.match(t.stderr, /SIGTERM: finishing this step and writing a checkpoint/);
  assert.ok(step(termed) >= 50 && step(termed) < 300, `checkpoint at step ${step(termed)}`);
  assert.equal(existsSync(join(termed, "student.safetensors")), false);

  const killed = join(dir, "killed");
  const k = await distillUntil(killed, 50, "SIGKILL");
  assert.equal(k.code, null, "killed by the signal");
  assert.ok(step(killed) >= 40 && step(killed) % 20 === 0, `checkpoint at step ${step(killed)}`);

  for (const run of [termed, killed]) {
    const r = spawnSync(process.execPath, [bin, "distill", "--config", config, "--out", run, "--resume"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /resuming from step \d+/);
    for (const [name, x] of expected) assert.deepEqual(student(run).get(name)!.data, x.data, `${run}: ${name}`);
    const steps = readFileSync(join(run, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.loss !== undefined).map((r) => r.step);
    assert.deepEqual(steps, Array.from({ length: 300 }, (_, i) => i + 1), "the log reads as one run");
  }
});

test("Ctrl-C during the final evaluation stops at once; the student is saved and the message says how to evaluate it", async () => {
  const out = join(dir, "eval-stop");
  const slowEval = join(dir, "slow-eval.yaml");
  writeFileSync(slowEval, readFileSync(config, "utf8").replace(/^train: .*$/m, "train: { steps: 4, prompts_per_step: 2, log_every: 1, eval_every: 1000, checkpoint_every: 20 }")
    .replace(/^eval: .*$/m, "eval: { noises_per_prompt: 3000, ode_steps: 64, projections: 8000, curve_noises: 2 }"));
  const t0 = Date.now();
  const r = await new Promise<{ code: number | null; stderr: string; ms: number }>((resolve) => {
    const child = spawn(process.execPath, [bin, "distill", "--config", slowEval, "--out", out], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "", sent = 0;
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (!sent && /evaluating…/.test(stderr)) { sent = Date.now(); setTimeout(() => child.kill("SIGINT"), 300); }
    });
    child.on("close", (code) => resolve({ code, stderr, ms: Date.now() - sent }));
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: evaluation stopped; the student is saved \(evaluate it with: tbcm eval --run .* --recompute\)/);
  assert.ok(existsSync(join(out, "student.safetensors")));
  assert.ok(Date.now() - t0 < 60_000);
});
