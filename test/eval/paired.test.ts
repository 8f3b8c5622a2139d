/** Paired comparisons of two samplers on the same images: differences and standard errors in closed form. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pairedAccuracy, bootstrapFds, fdDifference } from "../../src/eval/paired.ts";
import { featureMoments, frechetDistance } from "../../src/eval/frechet.ts";
import { key, normal } from "../../src/numerics/random.ts";

test("paired accuracy: the mean of per-image hit differences and its standard error sd(d)/√n", () => {
  const labels = [0, 1, 2, 3];
  // a hits images 0, 1, 2; b hits 0 and 3: d = [0, 1, 1, −1]
  const r = pairedAccuracy([0, 1, 2, 9], [0, 9, 9, 3], labels);
  assert.equal(r.difference, 0.25);
  // sample variance of d: (3 − 4·0.25²)/3
  assert.ok(Math.abs(r.se - Math.sqrt((3 - 0.25) / 3 / 4)) < 1e-12);
  // the same predictions: no difference, no error
  assert.deepEqual(pairedAccuracy([0, 1, 2, 9], [0, 1, 2, 9], labels), { difference: 0, se: 0 });
  assert.throws(() => pairedAccuracy([0], [0], [0, 1]), /as long as the labels/);
});

test("bootstrapped FD difference: zero for the same set; for a shifted set, 2c·(μ − μ_ref) + ‖c‖² with the delta method's error", () => {
  const n = 400, D = 2;
  const a = Float32Array.from(normal(key(3), n * D), (v, i) => (i % D === 0 ? 2 * v : v)); // Σ = diag(4, 1)
  const c = [0.5, -0.25];
  const b = a.map((v, i) => v + c[i % D]);
  const reference = { mean: Float64Array.from([0.3, -0.2]), cov: Float64Array.from([1, 0.2, 0.2, 1.5]) };
  const resamples = 400;
  const [fa, fb, fa2] = bootstrapFds([a, b, a], D, reference, resamples, key(9));
  const full = (f: Float32Array) => { const m = featureMoments(f, n, D); return frechetDistance(m.mean, m.cov, reference.mean, reference.cov); };

  const same = fdDifference(full(a), full(a), fa, fa2);
  assert.equal(same.difference, 0);
  assert.equal(same.se, 0);

  // a shift leaves the covariance alone: FD(b) − FD(a) = 2c·(μ_a − μ_ref) + ‖c‖² on the full sets and on every resample
  const { mean, cov } = featureMoments(a, n, D);
  const exact = 2 * (c[0] * (mean[0] - reference.mean[0]) + c[1] * (mean[1] - reference.mean[1])) + c[0] ** 2 + c[1] ** 2;
  const shift = fdDifference(full(b), full(a), fb, fa);
  assert.ok(Math.abs(shift.difference - exact) < 1e-6, `${shift.difference} vs ${exact}`);
  // its bootstrap error is that of 2c·μ̂: 2·√(cᵀ Σ c / n)
  const delta = 2 * Math.sqrt((c[0] * c[0] * cov[0] + 2 * c[0] * c[1] * cov[1] + c[1] * c[1] * cov[3]) / n);
  assert.ok(Math.abs(shift.se / delta - 1) < 0.12, `bootstrap ${shift.se} vs delta method ${delta}`);
});
