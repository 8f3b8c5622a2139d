import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, type Array } from "@jax-js/jax";
import { sampleTrajectory, trainingPairs, blackFilter } from "../../src/method/trajectory.ts";
import { teacherCfgVelocity, guidanceShare, guidesEverywhere, GUIDE_EVERYWHERE } from "../../src/method/guidance.ts";
import { flowTime, angleOfFlowTime } from "../../src/method/flowToTrig.ts";
import { trigflowStep } from "../../src/method/trigflow.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { routeAngles, drawRoute } from "../../src/method/route.ts";

/** Elementwise agreement up to float32 rounding (the route enters the program as float32). */
const near = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `${a[i]} vs ${b[i]}`);
};

/** A teacher whose velocity depends on x, t and the condition, so every term is exercised. */
const teacher = (u: Array, t: Array, c: Array) => u.mul(np.cos(t)).sub(c.mul(0.3));

test("trajectory: N states and velocities, steps of the spec, pairs are points 1..N−1 step-major", () => {
  const B = 3, d = 2;
  const route = [Math.PI / 2, 1.2, 0.7, 0.2];
  const x0 = [[0.1, -0.2], [0.4, 0.3], [-0.5, 0.05]];
  const cond = () => np.array([[1, 0], [0, 1], [0.5, 0.5]]);
  const uncond = () => np.zeros([B, d]);
  const w = () => np.array([[4], [4.5], [5]]);
  const traj = sampleTrajectory(teacher, np.array(x0), np.array(route), cond(), uncond(), w());
  assert.equal(traj.points.length, 4);
  // Recompute by hand with the same primitives: V[i] at (P[i], d[i]), then the exact TrigFlow step.
  let x = np.array(x0);
  for (let i = 0; i < 4; i++) {
    const v = teacherCfgVelocity(teacher, x.ref, np.array([[route[i]]]), cond(), uncond(), w());
    near(traj.points[i].ref.dataSync(), x.ref.dataSync());
    near(traj.velocities[i].ref.dataSync(), v.ref.dataSync());
    x = trigflowStep(x, v, i < 3 ? route[i] - route[i + 1] : route[i]);
  }
  near(traj.endpoint.ref.dataSync(), x.dataSync());
  const p1 = traj.points[1].ref.dataSync(), p3 = traj.points[3].ref.dataSync();
  const [xt, dxdt] = trainingPairs(traj);
  assert.deepEqual(xt.shape, [3 * B, d]);
  assert.deepEqual(dxdt.shape, [3 * B, d]);
  const rows = xt.dataSync();
  assert.deepEqual(rows.slice(0, B * d), p1); // rows 0..B−1: step 1
  assert.deepEqual(rows.slice(2 * B * d), p3); // last B rows: step N−1
  dxdt.dispose();
});

test("black filter: keeps far-from-black prompts, drops black ones, keeps with probability m", () => {
  const zBlack = Float32Array.from([-1, -1]);
  const black = Float32Array.from([-0.5, -0.5]); // x0/σ_d = z_black → m = 0
  const far = Float32Array.from([1, 1]); // m = 9
  assert.deepEqual(blackFilter(key(1), Float32Array.from([...black, ...far]), zBlack), Float32Array.from([0, 1]));
  // m = 0.25 everywhere: about a quarter kept.
  const quarter = new Float32Array(2000 * 2).fill(-0.25);
  const kept = blackFilter(key(2), quarter, zBlack).reduce((a, b) => a + b, 0) / 2000;
  assert.ok(Math.abs(kept - 0.25) < 0.04, `kept ${kept}`);
});

test("guidance schedule: flow time ↔ angle; w inside the interval, 1 outside (step or logistic edge), per row and along a trajectory", () => {
  assert.ok(Math.abs(angleOfFlowTime(0.5) - Math.PI / 4) < 1e-12);
  assert.ok(Math.abs(angleOfFlowTime(1) - Math.PI / 2) < 1e-12);
  for (const s of [0.1, 0.35, 0.6, 0.9]) assert.ok(Math.abs(flowTime(np.array([[angleOfFlowTime(s)]])).dataSync()[0] - s) < 1e-6);
  assert.ok(guidesEverywhere(GUIDE_EVERYWHERE));
  const hard = { interval: [0.2, 0.6], ramp: 0 };
  const smooth = { interval: [0.2, 0.6], ramp: 0.1 };
  assert.deepEqual([0.1, 0.4, 0.8].map((s) => guidanceShare(s, hard)), [0, 1, 0]);
  // logistic edges: one half at each edge, products of the two switches elsewhere
  assert.ok(Math.abs(guidanceShare(0.6, { interval: [0, 0.6], ramp: 0.1 }) - 0.5) < 1e-12);
  assert.ok(Math.abs(guidanceShare(0.4, smooth) - 1 / (1 + Math.exp(-2)) ** 2) < 1e-12);
  const B = 3, d = 2;
  const x = () => np.array([[0.1, -0.2], [0.4, 0.3], [-0.5, 0.05]]);
  const cond = () => np.array([[1, 0], [0, 1], [0.5, 0.5]]);
  const uncond = () => np.zeros([B, d]);
  const w = [[4], [4.5], [5]];
  // one angle per row (the sCM baseline's case): flow times 0.1 (below), 0.4 (inside), 0.8 (above)
  const times = [0.1, 0.4, 0.8];
  const t = () => np.array(times.map((s) => [angleOfFlowTime(s)]));
  for (const schedule of [hard, smooth]) {
    const got = teacherCfgVelocity(teacher, x(), t(), cond(), uncond(), np.array(w), schedule).dataSync();
    const scales = times.map((s, i) => [1 + (w[i][0] - 1) * guidanceShare(s, schedule)]);
    const expected = teacherCfgVelocity(teacher, x(), t(), cond(), uncond(), np.array(scales)).dataSync();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `${schedule.ramp}: ${got[i]} vs ${expected[i]}`);
  }
  // along a trajectory: the velocities outside the interval are the w = 1 ones
  const route = [Math.PI / 2, angleOfFlowTime(0.5), angleOfFlowTime(0.1)];
  const traj = sampleTrajectory(teacher, x(), np.array(route), cond(), uncond(), np.array(w), hard);
  route.forEach((a, i) => {
    const inside = i === 1;
    const v = teacherCfgVelocity(teacher, traj.points[i].ref, np.array([[a]]), cond(), uncond(), np.array(inside ? w : [[1], [1], [1]]));
    near(traj.velocities[i].ref.dataSync(), v.dataSync());
  });
  [...traj.points, ...traj.velocities, traj.endpoint].forEach((a) => a.dispose());
});

test("trajectory along unevenly spaced angles (route.sampling: logit_normal): each step takes its own Δ, exact for a one-point teacher", () => {
  // data = one point c: the ODE's solution is x_t = cos t·c + sin t·n, V = (cos t·x_t − c)/sin t, and the
  // TrigFlow step x ← cos Δ·x − sin Δ·V is exact for any Δ, so every state must sit on that curve
  const B = 4, d = 3, sd = 0.5;
  const c = [0.3, -0.6, 0.9];
  const n = globalThis.Array.from(normal(key(11), B * d), (v) => v * sd);
  const cArr = () => np.array(globalThis.Array.from({ length: B }, () => c));
  const onePoint = (u: Array, t: Array, _cond: Array) => {
    _cond.dispose();
    const rows = u.shape[0];
    const target = np.array(globalThis.Array.from({ length: rows }, () => c.map((v) => v / sd)));
    return u.mul(np.cos(t.ref)).sub(target).div(np.sin(t));
  };
  const route = drawRoute(key(5), routeAngles(2.5, 16), { sampling: "logit_normal", logitMean: 0, logitStd: 1 });
  const steps = route.slice(1).map((a, i) => route[i] - a);
  assert.ok(Math.max(...steps) > 3 * Math.min(...steps), `uneven: ${steps}`);
  const traj = sampleTrajectory(onePoint, np.array(n).reshape([B, d]), np.array(route), cArr(), cArr(), np.array([[4], [4.5], [5], [1]]));
  route.forEach((a, i) => {
    const t = Math.fround(a);
    const expected = n.map((v, j) => Math.cos(t) * c[j % d] + Math.sin(t) * v);
    const got = traj.points[i].ref.dataSync();
    for (let j = 0; j < got.length; j++) assert.ok(Math.abs(got[j] - expected[j]) < 2e-5, `point ${i}: ${got[j]} vs ${expected[j]}`);
  });
  const x0 = traj.endpoint.ref.dataSync();
  for (let j = 0; j < x0.length; j++) assert.ok(Math.abs(x0[j] - c[j % d]) < 2e-5, `endpoint ${x0[j]} vs ${c[j % d]}`);
  [...traj.points, ...traj.velocities, traj.endpoint].forEach((a) => a.dispose());
});
