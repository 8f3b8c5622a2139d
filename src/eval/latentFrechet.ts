/**
 * A distribution-level comparison for teachers that come without an image evaluator (teacher
 * bundles): the Fréchet distance between sets of latent samples, measured in the `k` leading
 * principal directions of a reference set (the teacher's own samples). Latents may have tens of
 * thousands of dimensions; the directions come from the n×n Gram matrix of the reference
 * (n samples), never from a d×d covariance.
 */
import { featureMoments, frechetTo, symmetricEigen } from "./frechet.ts";

/** Reference rows the principal directions are computed from (a 256×256 eigensolve: well under a second). */
const MAX_BASIS_ROWS = 256;

/** The mean [d] and `k` orthonormal principal directions [k·d] (largest variance first) of n rows [n·d]. */
export function principalDirections(rows: Float32Array, n: number, d: number, k: number): { mean: Float64Array; directions: Float64Array } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += rows[i * d + j] / n;
  const centred = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) centred[i * d + j] = rows[i * d + j] - mean[j];
  // G = X·Xᵀ shares its non-zero eigenvalues λ with XᵀX; the direction of eigenvector u is Xᵀu/√λ.
  const gram = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a; b < n; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += centred[a * d + j] * centred[b * d + j];
      gram[a * n + b] = gram[b * n + a] = s;
    }
  }
  const { values, vectors } = symmetricEigen(gram, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[b] - values[a]).filter((i) => values[i] > 1e-12 * Math.max(values[0], 1e-300)).slice(0, k);
  const directions = new Float64Array(order.length * d);
  order.forEach((e, r) => {
    const norm = Math.sqrt(values[e]);
    for (let i = 0; i < n; i++) {
      const u = vectors[i * n + e] / norm;
      if (u !== 0) for (let j = 0; j < d; j++) directions[r * d + j] += u * centred[i * d + j];
    }
  });
  return { mean, directions };
}

/** Rows [m·d] as coordinates [m·k] along `directions` [k·d], about `mean`. */
export function project(rows: Float32Array, m: number, d: number, mean: Float64Array, directions: Float64Array): Float64Array {
  const k = directions.length / d, out = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let r = 0; r < k; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += (rows[i * d + j] - mean[j]) * directions[r * d + j];
    out[i * k + r] = s;
  }
  return out;
}

/**
 * FD of each set [m·d] to `reference` [n·d] in the reference's leading principal directions: at most
 * `k`, and at most n/8 of them, since an FD of Gaussians fitted to n samples in K dimensions is biased
 * upwards by roughly K²/n. Comparable between sets measured at the same n (step counts, runs), not an
 * absolute scale.
 */
export function latentFrechet(reference: Float32Array, n: number, d: number, sets: readonly Float32Array[], k = 32): number[] {
  if (n < 16) throw new Error(`a latent FD needs at least 16 reference samples, got ${n}`);
  // the directions from at most MAX_BASIS_ROWS of the reference (the Gram matrix and its eigensolve grow as n², n³)
  const m = Math.min(n, MAX_BASIS_ROWS);
  const { mean, directions } = principalDirections(reference.subarray(0, m * d), m, d, Math.min(k, Math.floor(n / 8)));
  const K = directions.length / d;
  const moments = (rows: Float32Array, count: number) => featureMoments(project(rows, count, d, mean, directions), count, K);
  const ref = moments(reference, n);
  const toReference = frechetTo(ref.mean, ref.cov);
  return sets.map((s) => {
    const { mean: mu, cov } = moments(s, s.length / d);
    return toReference(mu, cov);
  });
}
