import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../tempDir.ts";

const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;
const dir = tempDir("tbcm-cli-");
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
  // every command that runs programs takes --device; a bad one is refused before any work
  fails(["train-vae", "--config", "configs/fmnist-stack.yaml", "--device", "tpu"], /--device is one of cpu, webgpu, cuda, got "tpu"/);
  fails(["eval-teacher", "--config", file("sj.yaml", "kind: stack\nexecutor: jax\n"), "--device", "webgpu"], /--device|executor/);
  // every command takes only its own options
  fails(["distill", "--config", file("k.yaml", "seed: 1\n"), "--out", out, "--steps", "4"], /Unknown option '--steps': tbcm distill does not take it/, out);
  fails(["export", "--run", out, "--out", out, "--prompt", "a bag"], /Unknown option '--prompt': tbcm export does not take it/, out);
  fails(["distill", "--config", file("l.yaml", "teacher: { kind: stack }\nstudent: { hidden: 8 }\n"), "--out", out], /"student" applies to teacher\.kind gmm, not stack/, out);
  fails(["distill", "--config", file("m.yaml", "eval: { samples: 10 }\n"), "--out", out], /"eval\.samples" applies to teacher\.kind stack or onnx, not gmm/, out);
  fails(["distill", "--config", file("n.yaml", "optim: { kind: adamw, clip_threshold: 1 }\n"), "--out", out], /unknown config key "optim\.clip_threshold" \(allowed in "optim": kind, lr, betas, eps/, out);
  fails(["distill", "--config", file("o.yaml", "optim: { kind: adamw, eps: [1e-8, 1e-6] }\n"), "--out", out], /"optim\.eps": expected a number/, out);
  fails(["distill", "--config", file("h.yaml", "guidance_interval: [0.6, 0.2]\n"), "--out", out], /"guidance_interval": expected two flow times 0 ≤ s_lo < s_hi ≤ 1/, out);
  fails(["distill", "--config", file("i.yaml", "guidance_interval: [0, 0.5]\n"), "--out", out], /"guidance_interval": the analytic gmm teacher guides everywhere/, out);
  fails(["distill", "--config", file("j.yaml", "guidance_ramp: -1\n"), "--out", out], /"guidance_ramp": expected a number ≥ 0/, out);
  const png = join(dir, "x.png");
  fails(["sample", "--model", "teacher", "--prompt", "a bag", "--guidance-interval", "0.5", "--out", png], /--guidance-interval expects two flow times/, png);
  fails(["sample", "--model", "teacher", "--prompt", "a bag", "--guidance-ramp", "0.1", "--out", png], /--guidance-ramp needs --guidance-interval/, png);
  fails(["sample", "--run", join(dir, "nothing"), "--prompt", "a bag", "--guidance-interval", "0,0.5", "--out", png], /are for --model teacher/, png);
  fails(["sample", "--model", "teacher", "--prompt", "a bag", "--eta", "0.5", "--out", png], /--eta is for a student/, png);
  fails(["sample", "--run", join(dir, "nothing"), "--prompt", "a bag", "--eta", "1.5", "--out", png], /--eta is a share of fresh noise in \[0, 1\]/, png);
  fails(["distill", "--config", file("k.yaml", "eval: {eta: 2}\n"), "--out", out], /"eval\.eta": expected a number .*≤ 1/, out);
  fails(["eval", "--run", join(dir, "nothing"), "--recompute", "--multi-step", "linear"], /--multi-step is one of shifted, from_mid, tail, got "linear"/);
  fails(["eval", "--run", join(dir, "nothing")], /no metrics\.json/);
  fails(["serve", "--dir", join(dir, "nothing")], /no manifest\.json in .*: pass a directory written by tbcm export/);
  fails(["serve"], /serve needs --dir/);
  fails(["schedule", "--steps", "x"], /--steps expects a number/);
  fails(["frobnicate"], /unknown command "frobnicate"/);
});

test("--help prints the usage and exits 0; no command prints it and exits 2", () => {
  for (const args of [["--help"], ["help"], ["sample", "--help"], ["export", "-h"]]) {
    const r = tbcm(...args);
    assert.equal(r.status, 0, args.join(" "));
    assert.match(r.stdout, /^usage:\n  tbcm distill/);
  }
  assert.equal(tbcm().status, 2);
});

test("a run whose loss stays non-finite stops with a one-line error and keeps a checkpoint", () => {
  const out = join(dir, "nan-run");
  const cfg = file("nan.yaml", [
    "teacher: { dim: 4, prompts: 3, components: 2 }", "student: { hidden: 16, embed_dim: 16, depth: 1 }",
    "route: { steps: 6 }", "guidance: [1.0e+38]", "train: { steps: 40, prompts_per_step: 2 }",
    "eval: { noises_per_prompt: 4, ode_steps: 8, curve_noises: 2 }", "optim: { lr: 1.0e-3, warmup_steps: 30 }",
  ].join("\n"));
  const r = tbcm("distill", "--config", cfg, "--out", out);
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim().split("\n").pop()!, /not finite for 20 steps in a row \(up to step 20\)/);
  assert.ok(existsSync(join(out, "checkpoint.safetensors")));
  // Unlike the reference (whose global step starts at 1 and stays on a skipped step), a skipped
  // step still advances the step and with it lr and r: they are functions of the step alone.
  const log = readFileSync(join(out, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(log.filter((l) => l.event === "skipped_nonfinite").map((l) => l.step), Array.from({ length: 20 }, (_, i) => i + 1));
  const logged = log.filter((l) => l.lr !== undefined);
  assert.deepEqual(logged.map((l) => [l.step, l.lr, l.r]), [[10, 1e-3 * 10 / 30, 9 / 4000]]); // the 20th skip stops the run before its line
});

test("schedule prints the route", () => {
  const r = tbcm("schedule", "--shift", "2.5", "--steps", "16", "--json");
  assert.equal(r.status, 0);
  const route = JSON.parse(r.stdout);
  assert.equal(route.length, 16);
  assert.ok(Math.abs(route[15] - 0.006256) < 1e-6);
});

test("stack configs and inputs: one-line errors naming the key or file and the fix", () => {
  const out = join(dir, "stack-run");
  const stack = (name: string, text: string) => file(name, `kind: stack\n${text}`);
  fails(["train-vae", "--config", stack("s1.yaml", "vae: {widht: 64}\n")], /unknown config key "vae\.widht" \(allowed in "vae": patch, latent_channels, width/);
  fails(["train-vae", "--config", stack("s2.yaml", "vae: {patch: 5}\n")], /"vae\.patch": must divide 28/);
  fails(["train-teacher", "--config", stack("s3.yaml", "teacher: {attention: flash}\n")], /"teacher\.attention": expected one of softmax, linear/);
  fails(["train-teacher", "--config", stack("s4.yaml", `models_dir: ${join(dir, "no-models")}\ndata_dir: ${join(dir, "no-data")}\n`)], /vae\.safetensors" is missing: run "tbcm train-vae/);
  fails(["train-vae", "--config", stack("s5.yaml", `data_dir: ${join(dir, "no-data")}\nmodels_dir: ${join(dir, "m")}\n`)], /not found in .*apt-get install dataset-fashion-mnist/);
  fails(["train-vae", "--config", file("gmm.yaml", "seed: 1\n")], /needs a stack config/);
  const teacherCfg = (name: string, extra: string) => file(name, `teacher: {kind: stack, model: ${extra}}\n`);
  fails(["distill", "--config", teacherCfg("t1.yaml", join(dir, "none.safetensors")), "--out", out], /no teacher at ".*none\.safetensors"/, out);
  const long = file("long.txt", "a photo of a very very very long sneaker on a table\n");
  fails(["distill", "--config", file("t2.yaml", `prompts_file: ${long}\nteacher: {kind: stack}\n`), "--out", out], /more than 8 words/, out);
  fails(["distill", "--config", file("t3.yaml", `prompts_file: ${file("e2.txt", "\n")}\nteacher: {kind: stack}\n`), "--out", out], /has no prompts/, out);
  fails(["sample", "--prompt", "a bag", "--out", join(dir, "x.png")], /--run <dir> .* or --model teacher/);
  fails(["sample", "--run", join(dir, "nothing"), "--prompt", "a bag", "--out", join(dir, "x.png")], /holds no finished student/);
  fails(["sample", "--model", "teacher", "--prompt", "a bag", "--n", "0", "--out", join(dir, "x.png")], /--n takes a whole number from 1 to 100000, got 0/);
});
