import { test } from "node:test";
import assert from "node:assert/strict";
import { routeAngles, jitterRoute, shiftSigma, drawRoute, logitNormalRoute } from "../../src/method/route.ts";
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

test("route.sampling: jittered is jitterRoute (same key, same numbers); ordered is the route itself", () => {
  const route = routeAngles(2.5, 16);
  for (let s = 0; s < 5; s++) {
    assert.deepEqual(drawRoute(key(s), route, { sampling: "jittered", logitMean: 0, logitStd: 1 }), jitterRoute(key(s), route));
    assert.deepEqual(drawRoute(key(s), route, { sampling: "ordered", logitMean: 0, logitStd: 1 }), route);
  }
});

test("route.sampling: logit_normal starts at π/2, decreases, and logit(s) has the configured mean and std", () => {
  const route = routeAngles(2.5, 16);
  const logit = (t: number) => { const s = Math.sin(t) / (Math.sin(t) + Math.cos(t)); return Math.log(s / (1 - s)); };
  for (const [mean, std] of [[0, 1], [-0.5, 1.5], [1, 0.5]] as const) {
    const o = { sampling: "logit_normal", logitMean: mean, logitStd: std } as const;
    const l: number[] = [];
    let below = 0;
    for (let s = 0; s < 400; s++) {
      const d = drawRoute(key(s), route, o);
      assert.equal(d.length, 16);
      assert.equal(d[0], route[0]);
      for (let i = 1; i < d.length; i++) {
        assert.ok(d[i] <= d[i - 1] && d[i] >= 0 && d[i] <= Math.PI / 2, `draw ${s} angle ${i}`);
        l.push(logit(d[i]));
        if (d[i] < Math.PI / 4) below++; // flow time s < 1/2
      }
    }
    // 6,000 draws: the standard error of the mean is std/77, of the std about std/110
    const m = l.reduce((a, b) => a + b, 0) / l.length;
    const sd = Math.sqrt(l.reduce((a, b) => a + (b - m) ** 2, 0) / (l.length - 1));
    assert.ok(Math.abs(m - mean) < 4 * std / 77, `mean ${m} vs ${mean}`);
    assert.ok(Math.abs(sd / std - 1) < 0.04, `std ${sd} vs ${std}`);
    // P(s < 1/2) = Φ(−mean/std), closed form
    const phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
    assert.ok(Math.abs(below / l.length - phi(-mean / std)) < 0.025, `P(s<1/2) ${below / l.length} vs ${phi(-mean / std)}`);
  }
  assert.deepEqual(logitNormalRoute(key(3), route, 0, 1), logitNormalRoute(key(3), route, 0, 1));
});

/** erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7). */
function erf(x: number): number {
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

test("route.sampling: mixed draws a jittered route or a logit-normal one, about half each, both keyed", () => {
  const route = routeAngles(2.5, 16);
  const o = { sampling: "mixed", logitMean: 0, logitStd: 1 } as const;
  // a jittered route keeps every angle inside its route interval; a logit-normal one almost never does
  const inIntervals = (d: number[]) => d.every((a, i) => i === 0 || (a >= route[i] && a <= route[i - 1]));
  let jittered = 0;
  for (let s = 0; s < 400; s++) {
    const d = drawRoute(key(s), route, o);
    assert.deepEqual(d, drawRoute(key(s), route, o));
    assert.equal(d[0], route[0]);
    for (let i = 1; i < d.length; i++) assert.ok(d[i] <= d[i - 1], `draw ${s} angle ${i}`);
    if (inIntervals(d)) jittered++;
  }
  // binomial(400, 1/2): standard deviation 10
  assert.ok(Math.abs(jittered - 200) < 40, `${jittered} of 400 jittered`);
});
