import { test } from "node:test";
import assert from "node:assert/strict";
import { frechetDistance, featureMoments, symmetricEigen, symmetricEigenvalues, sqrtPsd } from "../../src/eval/frechet.ts";
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

test("eigenvalues without vectors: closed forms, a rank-deficient matrix, and Jacobi's values", () => {
  const sorted = (v: ArrayLike<number>) => Array.from(v).sort((a, b) => a - b);
  // the second-difference matrix (2 on the diagonal, −1 beside it): λ_k = 2 − 2·cos(kπ/(D+1))
  for (const D of [1, 2, 7, 40]) {
    const A = new Float64Array(D * D);
    for (let i = 0; i < D; i++) { A[i * D + i] = 2; if (i + 1 < D) A[i * D + i + 1] = A[(i + 1) * D + i] = -1; }
    const expected = Array.from({ length: D }, (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (D + 1)));
    sorted(symmetricEigenvalues(A, D)).forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-12, `D ${D}: λ ${v} vs ${expected[k]}`));
  }
  // a dense covariance of rank 5 in 64 dimensions (59 zero eigenvalues), against Jacobi
  const D = 64, n = 6;
  const { cov } = featureMoments(normal(key(5), n * D), n, D);
  const ql = sorted(symmetricEigenvalues(cov, D)), jacobi = sorted(symmetricEigen(cov, D).values);
  const top = Math.max(...jacobi);
  ql.forEach((v, k) => assert.ok(Math.abs(v - jacobi[k]) < 1e-12 * top, `λ ${v} vs ${jacobi[k]}`));
  assert.ok(ql.slice(0, D - (n - 1)).every((v) => Math.abs(v) < 1e-12 * top));
  // a diverged student's features give a NaN FD, not an exception
  assert.ok(Array.from(symmetricEigenvalues(Float64Array.of(NaN, 1, 1, 0), 2)).every(Number.isNaN));
});

test("report curves: an SVG path through every finite point", () => {
  const svg = lineChart("loss", [[0, 1], [10, 0.5], [20, NaN], [30, 0.25]]);
  assert.match(svg, /^<svg/);
  assert.equal((svg.match(/[ML]\d/g) ?? []).length, 3);
  assert.equal(lineChart("x", [[0, 1]]), "");
});
