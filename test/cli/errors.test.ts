import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "tbcm-cli-"));
const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };
const tbcm = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });

/** Runs a failing command: exit ≠ 0, the first stderr line names the problem, no stack, no output dir. */
function fails(args: string[], message: RegExp, out?: string) {
  const r = tbcm(...args);
  assert.notEqual(r.status, 0);
  const first = r.stderr.split("\n")[0];
  assert.match(first, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  if (out) assert.equal(existsSync(out), false, "nothing written");
}

test("bad configs and inputs are one-line errors and write nothing", () => {
  const out = join(dir, "run");
  fails(["distill", "--config", join(dir, "missing.yaml"), "--out", out], /cannot read config file .*missing\.yaml/, out);
  fails(["distill", "--config", file("a.yaml", "optim: [1\n"), "--out", out], /not valid YAML/, out);
  fails(["distill", "--config", file("b.yaml", "optim: {lrr: 1}\n"), "--out", out], /unknown config key "optim\.lrr" \(allowed in "optim": kind, lr/, out);
  fails(["distill", "--config", file("c.yaml", "train: {steps: -3}\n"), "--out", out], /"train\.steps": expected an integer ≥ 1, got -3/, out);
  fails(["distill", "--config", file("d.yaml", "optim: {kind: sgd}\n"), "--out", out], /"optim\.kind": expected one of adamw, came/, out);
  const empty = file("empty.txt", "\n# only a comment\n");
  fails(["distill", "--config", file("e.yaml", `prompts_file: ${empty}\n`), "--out", out], /has no prompts/, out);
  const unknown = file("unknown.txt", "prompt 1\nan astronaut\n");
  fails(["distill", "--config", file("f.yaml", `prompts_file: ${unknown}\n`), "--out", out], /prompt "an astronaut" .* unknown to the teacher/, out);
  fails(["distill", "--config", file("g.yaml", "student: {init: nowhere.safetensors}\n"), "--out", out], /cannot read "nowhere\.safetensors"/, out);
  fails(["distill", "--out", out], /needs --config/, out);
  fails(["eval", "--run", join(dir, "nothing")], /no metrics\.json/);
  fails(["schedule", "--steps", "x"], /--steps expects a number/);
  fails(["frobnicate"], /unknown command "frobnicate"/);
});

test("a run whose loss stays non-finite stops with a one-line error and keeps a checkpoint", () => {
  const out = join(dir, "nan-run");
  const cfg = file("nan.yaml", [
    "teacher: { dim: 4, prompts: 3, components: 2 }", "student: { hidden: 16, embed_dim: 16, depth: 1 }",
    "route: { steps: 6 }", "guidance: [1.0e+38]", "train: { steps: 40, prompts_per_step: 2 }",
    "eval: { noises_per_prompt: 4, ode_steps: 8, curve_noises: 2 }",
  ].join("\n"));
  const r = tbcm("distill", "--config", cfg, "--out", out);
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim().split("\n").pop()!, /not finite for 20 steps in a row \(up to step 20\)/);
  assert.ok(existsSync(join(out, "checkpoint.safetensors")));
});

test("schedule prints the route", () => {
  const r = tbcm("schedule", "--shift", "2.5", "--steps", "16", "--json");
  assert.equal(r.status, 0);
  const route = JSON.parse(r.stdout);
  assert.equal(route.length, 16);
  assert.ok(Math.abs(route[15] - 0.006256) < 1e-6);
});
