/** Latent FD for bundles (src/eval/latentFrechet.ts): principal directions from the Gram matrix against closed forms. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { principalDirections, project, latentFrechet } from "../../src/eval/latentFrechet.ts";
import { featureMoments, symmetricEigen } from "../../src/eval/frechet.ts";
import { key, normal } from "../../src/numerics/random.ts";

/** n rows in d dims: independent Gaussians with standard deviations `sd` (then 0) along the axes, rotated by a fixed orthogonal map. */
function sample(n: number, d: number, sd: number[], seed: number): Float32Array {
  const z = normal(key(seed), n * d), out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[i * d + j] = (sd[j] ?? 0) * z[i * d + j];
  return out;
}

test("principal directions from the Gram matrix: orthonormal, and the covariance's leading eigenvectors and values", () => {
  const n = 40, d = 6;
  const x = sample(n, d, [3, 2, 1.5, 1, 0.5, 0.25], 1);
  const { mean, directions } = principalDirections(x, n, d, 4);
  for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) {
    let dot = 0;
    for (let j = 0; j < d; j++) dot += directions[a * d + j] * directions[b * d + j];
    assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-9, `⟨v${a}, v${b}⟩ = ${dot}`);
  }
  // against the d×d covariance: the same leading eigenvalues, and the projections' variances equal them
  const { cov } = featureMoments(x, n, d);
  const { values } = symmetricEigen(cov, d);
  const top = [...values].sort((a, b) => b - a).slice(0, 4);
  const coords = project(x, n, d, mean, directions);
  for (let r = 0; r < 4; r++) {
    let v = 0;
    for (let i = 0; i < n; i++) v += coords[i * 4 + r] ** 2 / (n - 1);
    assert.ok(Math.abs(v - top[r]) < 1e-9 * top[0], `variance along direction ${r}: ${v} against eigenvalue ${top[r]}`);
  }
});

test("latent FD: 0 to itself, |c|² for a shift c inside the principal span, 0 for one outside; d larger than n", () => {
  const n = 40, d = 200; // more dimensions than samples: the Gram route
  const x = sample(n, d, [2, 1.5, 1, 0.8, 0.6], 2); // variance in 5 axes only
  const shifted = (c: (j: number) => number) => x.map((v, i) => v + c(i % d));
  const fds = latentFrechet(x, n, d, [x, shifted((j) => (j === 0 ? 0.5 : 0)), shifted((j) => (j === 100 ? 7 : 0))], 5);
  assert.ok(Math.abs(fds[0]) < 1e-9, `to itself ${fds[0]}`);
  assert.ok(Math.abs(fds[1] - 0.25) < 1e-6, `shift 0.5 along a principal axis: ${fds[1]}`); // float32 rows: x + 0.5 rounds
  assert.ok(Math.abs(fds[2]) < 1e-9, `shift along an axis without variance: ${fds[2]}`);
});
