import { test } from "node:test";
import assert from "node:assert/strict";
import { routeAngles, jitterRoute, shiftSigma } from "../../src/method/route.ts";
import { key } from "../../src/numerics/random.ts";

test("route matches the spec's test vector (shift 2.5, 16 steps)", () => {
  const expected = [1.5708, 1.542309, 1.509512, 1.471437, 1.426839, 1.37412, 1.311228, 1.235578, 1.144037,
    1.033124, 0.899701, 0.742466, 0.564203, 0.373447, 0.183197, 0.006256];
  const route = routeAngles(2.5, 16);
  assert.equal(route.length, 16);
  route.forEach((t, i) => assert.ok(Math.abs(t - expected[i]) < (i === 0 ? 5e-5 : 1e-6), `angle ${i}: ${t} vs ${expected[i]}`));
});

test("route for other shifts and lengths equals a float64 evaluation of the formula", () => {
  for (const [shift, N] of [[1, 4], [3, 8], [5, 32]] as const) {
    const aMax = shiftSigma(1, shift), aMin = shiftSigma(1 / 1000, shift);
    const expected = Array.from({ length: N }, (_, i) => {
      if (i === 0) return Math.PI / 2;
      const b = aMax + ((aMin - aMax) * i) / (N - 1);
      const s = shiftSigma(b, shift);
      return Math.atan(s / (1 - s));
    });
    routeAngles(shift, N).forEach((t, i) => assert.ok(Math.abs(t - expected[i]) < 2e-6, `shift ${shift} N ${N} angle ${i}`));
  }
  // shift 1, 4 steps by hand: b = 1, 2/3 + 1/3000, 1/3 + 2/3000, 1/1000.
  const by = [2 / 3 + 1 / 3000, 1 / 3 + 2 / 3000, 1 / 1000].map((s) => Math.atan(s / (1 - s)));
  routeAngles(1, 4).slice(1).forEach((t, i) => assert.ok(Math.abs(t - by[i]) < 2e-6));
});

test("jittered route stays within each interval and keeps π/2 first", () => {
  const route = routeAngles(2.5, 16);
  for (let s = 0; s < 20; s++) {
    const d = jitterRoute(key(s), route);
    assert.equal(d[0], route[0]);
    for (let i = 1; i < d.length; i++) assert.ok(d[i] >= route[i] && d[i] <= route[i - 1]);
  }
  assert.deepEqual(jitterRoute(key(7), route), jitterRoute(key(7), route));
});

test("bad route arguments are errors", () => {
  assert.throws(() => routeAngles(2.5, 1), /steps/);
  assert.throws(() => routeAngles(0, 16), /shift/);
});
