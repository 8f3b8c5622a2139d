import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parseConfig, type TbcmConfig } from "../../src/config/schema.ts";
import { distill } from "../../src/run/distill.ts";
import { loadSafetensors } from "../../src/numerics/safetensors.ts";

const base = loadConfig(new URL("../fixtures/tiny.yaml", import.meta.url).pathname);
const withSteps = (c: TbcmConfig, steps: number) => ({ ...c, train: { ...c.train, steps } });
const tmp = () => mkdtempSync(join(tmpdir(), "tbcm-"));

test("a resumed run ends with exactly the parameters of an uninterrupted one (and the same parameter average)", async () => {
  const withEma = { ...base, train: { ...base.train, ema: 0.9 } };
  for (const cfg of [base, withEma, parseConfig({ ...JSON.parse(readFileSync(new URL("../fixtures/tiny.json", import.meta.url), "utf8")) })]) {
    const whole = tmp(), split = tmp();
    await distill(cfg, whole);
    await distill(withSteps(cfg, 3), split);
    await distill(cfg, split, { resume: true });
    const a = loadSafetensors(join(whole, "student.safetensors")).tensors;
    const b = loadSafetensors(join(split, "student.safetensors")).tensors;
    assert.equal(a.size, b.size);
    for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, `tensor ${name} (${cfg.method})`);
    const logA = readFileSync(join(whole, "log.jsonl"), "utf8").split("\n").map((l) => l && JSON.parse(l)).filter((r) => r && r.loss !== undefined);
    const logB = readFileSync(join(split, "log.jsonl"), "utf8").split("\n").map((l) => l && JSON.parse(l)).filter((r) => r && r.loss !== undefined);
    assert.deepEqual(logB.map((r) => r.loss), logA.map((r) => r.loss));
    // with train.ema the student is the average, not the last parameters of the checkpoint
    const last = loadSafetensors(join(whole, "checkpoint.safetensors")).tensors;
    const [name, t] = [...a][0];
    const differs = t.data.some((v, i) => v !== last.get(`params.${name}`)!.data[i]);
    assert.equal(differs, cfg === withEma, `student vs last parameters (${cfg === withEma ? "ema" : "no ema"})`);
    assert.equal([...last.keys()].some((k) => k.startsWith("ema.")), cfg === withEma);
  }
});

test("resume refuses a run directory made with another config, and a fresh run refuses an existing one", async () => {
  const dir = tmp();
  await distill(withSteps(base, 3), dir);
  await assert.rejects(distill({ ...base, seed: 99 }, dir, { resume: true }), /another config/);
  await assert.rejects(distill(base, dir), /already holds a run/);
});

test("a stop request writes a checkpoint that resumes", async () => {
  const dir = tmp();
  let calls = 0;
  const r = await distill(base, dir, { stopRequested: () => ++calls >= 2 });
  assert.equal(r.interrupted, true);
  assert.equal(r.steps, 2);
  const resumed = await distill(base, dir, { resume: true });
  assert.equal(resumed.steps, 6);
  assert.ok(resumed.metrics.consistency_rel_mse_1step > 0);
});

test("the log has per-step diagnostics and a consistency curve; metrics.json has every metric", async () => {
  const dir = tmp();
  await distill(base, dir);
  const records = readFileSync(join(dir, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const steps = records.filter((r) => r.loss !== undefined);
  assert.equal(steps.length, 6);
  for (const k of ["loss", "loss_no_logvar", "loss_no_weight", "tangent_norm", "grad_norm", "r", "lr"]) assert.ok(Number.isFinite(steps[0][k]), k);
  assert.deepEqual(records.filter((r) => r.consistency_rel_mse_1step !== undefined).map((r) => r.step), [0, 3, 6]);
  const metrics = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8"));
  for (const k of ["consistency_rel_mse_1step", "sw2_1step", "sw2_2step", "sw2_teacher_euler16"]) assert.ok(Number.isFinite(metrics[k]), k);
});

test("library sample(): deterministic by seed, 1 and 2 steps, unknown prompts rejected", async () => {
  const { loadStudent, sample } = await import("../../src/index.ts");
  const dir = tmp();
  await distill(base, dir);
  const student = loadStudent(dir);
  const a = sample({ student, prompts: ["prompt 0", "prompt 2"], steps: 1, seed: 4 });
  const b = sample({ student, prompts: ["prompt 0", "prompt 2"], steps: 1, seed: 4 });
  const c = sample({ student, prompts: ["prompt 0", "prompt 2"], steps: 2, seed: 5 });
  assert.equal(a.length, 2);
  assert.equal(a[0].length, 4);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.throws(() => sample({ student, prompts: ["a cat"] }), /unknown to this student/);
});

test("train.snapshot_every keeps the student (the average when kept) at those steps; the last one is the run's student", async () => {
  const { readdirSync } = await import("node:fs");
  const dir = tmp();
  await distill({ ...base, train: { ...base.train, ema: 0.9, snapshotEvery: 2 } }, dir);
  assert.deepEqual(readdirSync(join(dir, "snapshots")), ["student-000002.safetensors", "student-000004.safetensors", "student-000006.safetensors"]);
  const student = loadSafetensors(join(dir, "student.safetensors"));
  const last = loadSafetensors(join(dir, "snapshots", "student-000006.safetensors"));
  assert.equal(last.metadata.kind, student.metadata.kind);
  assert.equal(last.metadata.step, "6");
  for (const [name, t] of student.tensors) assert.deepEqual(last.tensors.get(name)!.data, t.data, name);
  // an earlier snapshot is an earlier average: same tensors, other values
  const early = loadSafetensors(join(dir, "snapshots", "student-000002.safetensors")).tensors;
  assert.deepEqual([...early.keys()].sort(), [...student.tensors.keys()].sort());
  assert.ok([...student.tensors].some(([name, t]) => t.data.some((v, i) => v !== early.get(name)!.data[i])));
});
