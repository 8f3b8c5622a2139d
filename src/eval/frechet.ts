/**
 * Fréchet distance between Gaussians fitted to feature sets (the FID formula, Heusel et al. 2017):
 * `FD = ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2·(C₁^½ C₂ C₁^½)^½)`, in float64 with a symmetric eigensolver.
 */

/** Mean [D] and covariance [D·D] (unbiased) of n feature rows [n·D]. */
export function featureMoments(features: ArrayLike<number>, n: number, D: number): { mean: Float64Array; cov: Float64Array } {
  const mean = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) mean[j] += features[i * D + j];
  for (let j = 0; j < D; j++) mean[j] /= n;
  const cov = new Float64Array(D * D);
  const row = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < D; j++) row[j] = features[i * D + j] - mean[j];
    for (let a = 0; a < D; a++) {
      const ra = row[a];
      for (let b = a; b < D; b++) cov[a * D + b] += ra * row[b];
    }
  }
  for (let a = 0; a < D; a++) for (let b = a; b < D; b++) cov[b * D + a] = cov[a * D + b] /= n - 1;
  return { mean, cov };
}

/** Eigenvalues and eigenvectors (columns of V) of a symmetric matrix [D·D], cyclic Jacobi. */
export function symmetricEigen(matrix: Float64Array, D: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(matrix);
  const V = new Float64Array(D * D);
  for (let i = 0; i < D; i++) V[i * D + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, total = 0;
    for (let p = 0; p < D; p++) for (let q = 0; q < D; q++) { const v = A[p * D + q] ** 2; total += v; if (p !== q) off += v; }
    if (off <= 1e-24 * total || off === 0) break;
    for (let p = 0; p < D - 1; p++) for (let q = p + 1; q < D; q++) {
      const apq = A[p * D + q];
      if (Math.abs(apq) < 1e-300) continue;
      const theta = (A[q * D + q] - A[p * D + p]) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < D; k++) { // A ← A·J
        const akp = A[k * D + p], akq = A[k * D + q];
        A[k * D + p] = c * akp - s * akq; A[k * D + q] = s * akp + c * akq;
      }
      for (let k = 0; k < D; k++) { // A ← Jᵀ·A
        const apk = A[p * D + k], aqk = A[q * D + k];
        A[p * D + k] = c * apk - s * aqk; A[q * D + k] = s * apk + c * aqk;
      }
      for (let k = 0; k < D; k++) {
        const vkp = V[k * D + p], vkq = V[k * D + q];
        V[k * D + p] = c * vkp - s * vkq; V[k * D + q] = s * vkp + c * vkq;
      }
    }
  }
  const values = new Float64Array(D);
  for (let i = 0; i < D; i++) values[i] = A[i * D + i];
  return { values, vectors: V };
}

/** Square root of a symmetric positive semi-definite matrix (negative eigenvalues clamped to 0). */
export function sqrtPsd(matrix: Float64Array, D: number): Float64Array {
  const { values, vectors: V } = symmetricEigen(matrix, D);
  const out = new Float64Array(D * D);
  for (let k = 0; k < D; k++) {
    const r = Math.sqrt(Math.max(0, values[k]));
    if (r === 0) continue;
    for (let i = 0; i < D; i++) {
      const vi = V[i * D + k] * r;
      for (let j = 0; j < D; j++) out[i * D + j] += vi * V[j * D + k];
    }
  }
  return out;
}

function matmul(A: Float64Array, B: Float64Array, D: number): Float64Array {
  const out = new Float64Array(D * D);
  for (let i = 0; i < D; i++) for (let k = 0; k < D; k++) {
    const a = A[i * D + k];
    if (a === 0) continue;
    for (let j = 0; j < D; j++) out[i * D + j] += a * B[k * D + j];
  }
  return out;
}

export function frechetDistance(mu1: Float64Array, c1: Float64Array, mu2: Float64Array, c2: Float64Array): number {
  return frechetTo(mu1, c1)(mu2, c2);
}

/**
 * FD to a fixed Gaussian (μ₁, C₁) as a function of the other, with C₁^½ computed once: one
 * eigensolve per call instead of two (a bootstrap measures many sets against one reference).
 */
export function frechetTo(mu1: Float64Array, c1: Float64Array): (mu2: Float64Array, c2: Float64Array) => number {
  const D = mu1.length;
  const s1 = sqrtPsd(c1, D);
  return (mu2, c2) => {
    let fd = 0;
    for (let j = 0; j < D; j++) fd += (mu1[j] - mu2[j]) ** 2 + c1[j * D + j] + c2[j * D + j];
    const inner = matmul(matmul(s1, c2, D), s1, D);
    for (let i = 0; i < D; i++) for (let j = i + 1; j < D; j++) inner[i * D + j] = inner[j * D + i] = 0.5 * (inner[i * D + j] + inner[j * D + i]);
    const { values } = symmetricEigen(inner, D);
    for (const v of values) fd -= 2 * Math.sqrt(Math.max(0, v));
    return fd;
  };
}
