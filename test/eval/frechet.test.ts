import { test } from "node:test";
import assert from "node:assert/strict";
import { frechetDistance, featureMoments, symmetricEigen, sqrtPsd } from "../../src/eval/frechet.ts";
import { lineChart } from "../../src/eval/report.ts";
import { key, normal } from "../../src/numerics/random.ts";

test("Fréchet distance: closed form for commuting covariances, zero for identical Gaussians", () => {
  const D = 3;
  const mu1 = Float64Array.of(0, 1, 2), mu2 = Float64Array.of(1, 1, 0);
  const diag = (v: number[]) => { const m = new Float64Array(D * D); v.forEach((x, i) => { m[i * D + i] = x; }); return m; };
  // FD = ‖μ₁−μ₂‖² + Σ(√a − √b)² when both covariances are diagonal
  const fd = frechetDistance(mu1, diag([1, 4, 9]), mu2, diag([4, 4, 1]));
  assert.ok(Math.abs(fd - (5 + 1 + 0 + 4)) < 1e-9, `FD ${fd}`);
  // a rotated pair: R·diag·Rᵀ for both, same rotation → same value
  const c = Math.cos(0.7), s = Math.sin(0.7);
  const R = Float64Array.of(c, -s, 0, s, c, 0, 0, 0, 1);
  const rot = (m: Float64Array) => {
    const out = new Float64Array(D * D);
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) for (let k = 0; k < D; k++) for (let l = 0; l < D; l++) out[i * D + j] += R[i * D + k] * m[k * D + l] * R[j * D + l];
    return out;
  };
  assert.ok(Math.abs(frechetDistance(mu1, rot(diag([1, 4, 9])), mu2, rot(diag([4, 4, 1]))) - 10) < 1e-8);
  assert.ok(Math.abs(frechetDistance(mu1, rot(diag([1, 4, 9])), mu1, rot(diag([1, 4, 9])))) < 1e-8);
});

test("symmetric eigensolver and PSD square root reproduce the matrix", () => {
  const D = 6;
  const x = normal(key(3), 40 * D);
  const { cov } = featureMoments(x, 40, D);
  const { values, vectors: V } = symmetricEigen(cov, D);
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) {
    let a = 0;
    for (let k = 0; k < D; k++) a += V[i * D + k] * values[k] * V[j * D + k];
    assert.ok(Math.abs(a - cov[i * D + j]) < 1e-10);
  }
  const r = sqrtPsd(cov, D);
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) {
    let a = 0;
    for (let k = 0; k < D; k++) a += r[i * D + k] * r[k * D + j];
    assert.ok(Math.abs(a - cov[i * D + j]) < 1e-10);
  }
  // moments: unbiased covariance of two points is half their squared difference
  const m = featureMoments(Float32Array.of(1, 2, 3, 6), 2, 2);
  assert.deepEqual(Array.from(m.mean), [2, 4]);
  assert.deepEqual(Array.from(m.cov), [2, 4, 4, 8]);
});

test("report curves: an SVG path through every finite point", () => {
  const svg = lineChart("loss", [[0, 1], [10, 0.5], [20, NaN], [30, 0.25]]);
  assert.match(svg, /^<svg/);
  assert.equal((svg.match(/[ML]\d/g) ?? []).length, 3);
  assert.equal(lineChart("x", [[0, 1]]), "");
});
