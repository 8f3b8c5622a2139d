import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, type Array } from "@jax-js/jax";
import { sampleStudent, studentTimesteps, checkTimesteps } from "../../src/method/sampler.ts";
import { odeEndpoint } from "../../src/eval/ode.ts";
import { sampleTrajectory } from "../../src/method/trajectory.ts";
import { routeAngles } from "../../src/method/route.ts";
import { key, normal } from "../../src/numerics/random.ts";

/**
 * Unit-variance Gaussian data z ~ N(μ, I): with u = cos t·z + sin t·ε, E[z | u] = μ + cos t·(u − cos t·μ)
 * and E[ε | u] = sin t·(u − cos t·μ), so the teacher's F = E[cos t·ε − sin t·z | u] = −sin t·μ,
 * and its ODE moves every point by σ_d·μ·(1 − cos t) on the way from t to 0.
 */
const mu = [0.8, -1.5];
const gaussianTeacher = (u: Array, t: Array, c: Array) => {
  c.dispose();
  return np.zerosLike(u).sub(np.sin(t).mul(np.array([mu]))); // one row per input row, as a TrigVelocity returns
};
/** The exact consistency model of that ODE: f(x_t, t) = x_t + σ_d·μ·(1 − cos t) ⇔ F = −(1 − cos t)/sin t·(u + μ). */
const exactStudent = (u: Array, t: Array, c: Array) => {
  c.dispose();
  const ratio = np.subtract(1, np.cos(t.ref)).div(np.sin(t));
  return u.add(np.array([mu])).mul(ratio).neg();
};

test("student timesteps: 1, 2 and n steps from π/2 to 0", () => {
  assert.deepEqual(studentTimesteps(1), [Math.PI / 2, 0]);
  assert.deepEqual(studentTimesteps(2), [Math.PI / 2, 1, 0]);
  const four = studentTimesteps(4);
  assert.equal(four.length, 5);
  checkTimesteps(four);
  // from_mid: the 2-step list's middle angle, then evenly spaced in angle down to 0
  const fromMid = studentTimesteps(4, 0.7, undefined, "from_mid");
  assert.equal(fromMid.length, 5);
  [Math.PI / 2, 0.7, 0.7 * 2 / 3, 0.7 / 3, 0].forEach((t, i) => assert.ok(Math.abs(fromMid[i] - t) < 1e-12, `${fromMid[i]} vs ${t}`));
  checkTimesteps(fromMid);
  assert.deepEqual(studentTimesteps(2, 0.7, undefined, "from_mid"), [Math.PI / 2, 0.7, 0]);
  assert.deepEqual(studentTimesteps(3, 0.8, undefined, "from_mid"), [Math.PI / 2, 0.8, 0.4, 0]);
  assert.deepEqual(studentTimesteps(4, 0.7, undefined, "shifted"), four);
  // tail: the middle angle, then geometrically down to 0.1 (0.7·(1/7)^(1/2) = 0.26458 at 4 steps)
  const tail = studentTimesteps(4, 0.7, undefined, "tail");
  [Math.PI / 2, 0.7, 0.7 / Math.sqrt(7), 0.1, 0].forEach((t, i) => assert.ok(Math.abs(tail[i] - t) < 1e-12, `${tail[i]} vs ${t}`));
  assert.deepEqual(studentTimesteps(3, 0.7, undefined, "tail"), [Math.PI / 2, 0.7, 0.1, 0]);
  assert.deepEqual(studentTimesteps(2, 0.7, undefined, "tail"), [Math.PI / 2, 0.7, 0]);
  checkTimesteps(studentTimesteps(12, 1.2, undefined, "tail"));
  // a middle angle at or below the tail's end: evenly to 0 as from_mid
  assert.deepEqual(studentTimesteps(3, 0.08, undefined, "tail"), studentTimesteps(3, 0.08, undefined, "from_mid"));
  assert.throws(() => checkTimesteps([1.5, 0]), /start at π\/2/);
  assert.throws(() => checkTimesteps([Math.PI / 2, 1, 1.2, 0]), /decrease/);
});

test("the sCM sampler with an exact consistency model lands on the ODE endpoint, deterministically by seed", () => {
  const n = normal(key(5), 8);
  const noise = () => np.array(n).reshape([4, 2]);
  const cond = () => np.zeros([4, 1]);
  const one = sampleStudent(exactStudent, [noise()], studentTimesteps(1), cond()).dataSync();
  const ode = odeEndpoint(gaussianTeacher, noise(), cond(), cond(), np.ones([4, 1]), 64).dataSync();
  one.forEach((v: number, i: number) => {
    assert.ok(Math.abs(v - 0.5 * (n[i] + mu[i % 2])) < 1e-5, "x0 = σ_d·(n + μ)");
    assert.ok(Math.abs(v - ode[i]) < 1e-5, `${v} vs ODE ${ode[i]}`);
  });
  const two = () => sampleStudent(exactStudent, [noise(), np.array(normal(key(6), 8)).reshape([4, 2])], studentTimesteps(2), cond()).dataSync();
  assert.deepEqual(two(), two());
});

test("re-noising with η: the exact model's 2-step sample is σ_d·((cos t + √(1−η²)·sin t)·n + η·sin t·z + μ), variance 1 + √(1−η²)·sin 2t", () => {
  const n = normal(key(5), 8), z = normal(key(6), 8);
  const t = 1;
  for (const eta of [1, 0.6, 0]) {
    const k = Math.sqrt(1 - eta * eta);
    const two = sampleStudent(exactStudent, [np.array(n).reshape([4, 2]), np.array(z).reshape([4, 2])], [Math.PI / 2, t, 0], np.zeros([4, 1]), eta).dataSync();
    two.forEach((v: number, i: number) => {
      const expected = 0.5 * ((Math.cos(t) + k * Math.sin(t)) * n[i] + eta * Math.sin(t) * z[i] + mu[i % 2]);
      assert.ok(Math.abs(v - expected) < 1e-5, `η ${eta}: ${v} vs ${expected}`);
    });
    // the coefficients' squares sum to the variance factor: exact (1) only at η = 1
    const factor = (Math.cos(t) + k * Math.sin(t)) ** 2 + (eta * Math.sin(t)) ** 2;
    assert.ok(Math.abs(factor - (1 + k * Math.sin(2 * t))) < 1e-12);
  }
  assert.throws(() => sampleStudent(exactStudent, [np.zeros([4, 2]), np.zeros([4, 2])], [Math.PI / 2, t, 0], np.zeros([4, 1]), 1.5), /η must be in \[0, 1\]/);
});

test("RK4 ODE endpoint converges; the teacher's route sampler converges to it at first order", () => {
  const n = normal(key(9), 8);
  const noise = () => np.array(n).reshape([4, 2]);
  const exact = n.map((v, i) => 0.5 * (v + mu[i % 2]));
  const ode = odeEndpoint(gaussianTeacher, noise(), np.zeros([4, 1]), np.zeros([4, 1]), np.ones([4, 1]), 32).dataSync();
  ode.forEach((v: number, i: number) => assert.ok(Math.abs(v - exact[i]) < 1e-5));
  const routeError = (steps: number) => {
    const traj = sampleTrajectory(gaussianTeacher, noise().mul(0.5), np.array(routeAngles(2.5, steps)), np.zeros([4, 1]), np.zeros([4, 1]), np.ones([4, 1]));
    const x = traj.endpoint.ref.dataSync();
    traj.points.forEach((p) => p.dispose()); traj.velocities.forEach((v) => v.dispose()); traj.endpoint.dispose();
    return Math.max(...globalThis.Array.from(x, (v: number, i: number) => Math.abs(v - exact[i])));
  };
  const e16 = routeError(16), e64 = routeError(64);
  assert.ok(e16 < 0.1 && e64 < e16 / 2.5, `errors ${e16} (16 steps), ${e64} (64 steps)`);
});
