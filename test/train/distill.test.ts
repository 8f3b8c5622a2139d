import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { jit } from "@jax-js/jax";
import { loadConfig, parseConfig, configToRaw, type TbcmConfig } from "../../src/config/schema.ts";
import { SIGMA_D } from "../../src/config/defaults.ts";
import { evalKeys, pairPass, drawPairs } from "../../src/train/distill.ts";
import { teacherKind } from "../../src/run/kinds.ts";
import { routeAngles, legRoute } from "../../src/method/route.ts";
import { key, foldIn, normal, uniform } from "../../src/numerics/random.ts";
import { distill } from "../../src/run/distill.ts";
import { loadSafetensors } from "../../src/numerics/safetensors.ts";
import { tempDir } from "../tempDir.ts";

const base = loadConfig(new URL("../fixtures/tiny.yaml", import.meta.url).pathname);
const withSteps = (c: TbcmConfig, steps: number) => ({ ...c, train: { ...c.train, steps } });
const tmp = () => tempDir("tbcm-");

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

test("route.leg_steps: each step also trains on a leg from its endpoints re-noised to t_r, with that leg's own endpoint", async () => {
  const cfg = parseConfig({ ...configToRaw(base), route: { shift: 2.5, steps: 6, leg_steps: 3, leg_range: [0.2, 0.8] } });
  const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
  const pass = jit(pairPass(cfg, problem).f);
  const route = routeAngles(2.5, 6), k = key(7), B = 2, d = 4, N = 6, M = 3;
  const batch = await drawPairs(cfg, problem, k, route, async (xs) => pass(...xs));
  const rows = (N - 1 + M) * B;
  assert.deepEqual(batch.xt.shape, [rows, d]);
  const host = (a: { dataSync(): unknown }) => Array.from(a.dataSync() as Float32Array);
  const [xt, dxdt, t, x0] = [host(batch.xt), host(batch.dxdt), host(batch.t), host(batch.x0)];
  // the leg's angles: t_r drawn in leg_range, then even steps to 0
  const legT = t.slice((N - 1) * B).filter((_, r) => r % B === 0);
  const tr = legRoute(uniform(foldIn(k, 9), 1)[0], [0.2, 0.8], M);
  legT.forEach((a, i) => assert.ok(Math.abs(a - tr[i]) < 1e-6, `leg angle ${i}: ${a} vs ${tr[i]}`));
  assert.ok(tr[0] >= 0.2 && tr[0] < 0.8);
  const noise = normal(foldIn(k, 10), B * d);
  for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) {
    const endpoint = x0[b * d + j]; // the trajectory rows carry their trajectory's endpoint
    // the leg starts at its prompt's endpoint re-noised with fresh noise: cos t_r·x0 + sin t_r·σ_d·z
    const start = xt[((N - 1) * B + b) * d + j];
    assert.ok(Math.abs(start - (Math.cos(tr[0]) * endpoint + Math.sin(tr[0]) * SIGMA_D * noise[b * d + j])) < 1e-5, `leg start ${b},${j}`);
    // the leg rows carry the leg's endpoint: one teacher step from its last state to 0
    const last = ((N - 1 + M - 1) * B + b) * d + j;
    const legEnd = Math.cos(tr[M - 1]) * xt[last] - Math.sin(tr[M - 1]) * dxdt[last];
    for (let i = 0; i < M; i++) assert.ok(Math.abs(x0[((N - 1 + i) * B + b) * d + j] - legEnd) < 1e-5, `leg endpoint ${b},${j}, row ${i}`);
  }
  for (const a of [batch.cond, batch.w, batch.keep]) a.dispose(); // the rest were read (and consumed) above
  pass.dispose();
  problem.dispose();
});

test("route.leg_range is checked, and the sCM baseline refuses legs", () => {
  for (const leg_range of [[0, 0.5], [0.6, 0.5], [0.2, 1.6]]) {
    assert.throws(() => parseConfig({ ...configToRaw(base), route: { leg_steps: 2, leg_range } }), /"route.leg_range": expected two angles 0 < lo ≤ hi < π\/2/);
  }
  assert.throws(() => parseConfig({ ...configToRaw(base), method: "scm", route: { leg_steps: 2 } }), /"route.leg_steps": the sCM baseline has no trajectories to re-noise/);
});
