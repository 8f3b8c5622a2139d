import { test } from "node:test";
import assert from "node:assert/strict";
import { slicedWasserstein2, relativeMse } from "../../src/eval/distance.ts";
import { key, foldIn, normal } from "../../src/numerics/random.ts";

/** n samples of N(mean, std² I) in R^d. */
function gaussian(k: number, n: number, d: number, mean: number[], std: number): Float32Array {
  const e = normal(key(k), n * d);
  return e.map((v, i) => mean[i % d] + std * v);
}

test("sliced W2 between two isotropic Gaussians: SW2² = ‖Δμ‖²/d + (σa − σb)² (closed form, per direction averaged over the sphere)", () => {
  const d = 4, n = 4000;
  const ma = [1, 0, -1, 0.5], mb = [0, 0.5, 0, 0];
  const a = gaussian(1, n, d, ma, 1.0), b = gaussian(2, n, d, mb, 0.5);
  const delta2 = ma.reduce((s, m, i) => s + (m - mb[i]) ** 2, 0);
  const expected = Math.sqrt(delta2 / d + (1.0 - 0.5) ** 2);
  const got = slicedWasserstein2(a, b, d, 400, foldIn(key(3), 0));
  assert.ok(Math.abs(got - expected) / expected < 0.05, `SW2 ${got} vs closed form ${expected}`);
  // the same set: 0; a shift by c along every axis: |c|·sqrt(d)/sqrt(d)… = |c| on average over directions of ‖Δ‖²/d
  assert.equal(slicedWasserstein2(a, a, d, 16, key(4)), 0);
  const shifted = a.map((v) => v + 0.3);
  assert.ok(Math.abs(slicedWasserstein2(a, shifted, d, 2000, key(5)) - 0.3) < 0.02);
  assert.throws(() => slicedWasserstein2(a, b.subarray(0, d * 10), d, 4, key(6)), /equal sample counts/);
});

test("relative MSE: Σ‖a − b‖² / Σ‖b‖²", () => {
  assert.equal(relativeMse(Float32Array.from([1, 2]), Float32Array.from([1, 2])), 0);
  assert.ok(Math.abs(relativeMse(Float32Array.from([0, 0]), Float32Array.from([3, 4])) - 1) < 1e-12);
  assert.ok(Math.abs(relativeMse(Float32Array.from([1, 1]), Float32Array.from([2, 0])) - 2 / 4) < 1e-12);
});
