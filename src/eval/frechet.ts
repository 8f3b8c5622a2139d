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

/**
 * Eigenvalues (unordered) of a symmetric matrix [D·D], without vectors: Householder reduction to
 * tridiagonal form, then implicit QL with Wilkinson-type shifts. About (4/3)·D³ operations against
 * Jacobi's ~10 sweeps of 3·D³ (a 128×128 FD term: ~7 ms against ~60 ms, bench/frechet.bench.ts),
 * so a bootstrap can afford many replicates; {@link symmetricEigen} stays for the one root that
 * needs vectors.
 */
export function symmetricEigenvalues(matrix: Float64Array, D: number): Float64Array {
  // a diverged student's features: its FD is NaN, as the Jacobi path gave, not an exception
  if (!matrix.every(Number.isFinite)) return new Float64Array(D).fill(NaN);
  const A = Float64Array.from(matrix);
  const d = new Float64Array(D), e = new Float64Array(D); // e[i] couples i and i+1
  const v = new Float64Array(D), p = new Float64Array(D);
  for (let k = 0; k < D - 2; k++) {
    // reflect column k below the diagonal onto its first entry: H = I − 2·v·vᵀ, v a unit vector
    let norm = 0;
    for (let i = k + 1; i < D; i++) norm += A[i * D + k] ** 2;
    norm = Math.sqrt(norm);
    const x0 = A[(k + 1) * D + k];
    const alpha = x0 > 0 ? -norm : norm;
    let vNorm = 0;
    for (let i = k + 1; i < D; i++) { v[i] = A[i * D + k] - (i === k + 1 ? alpha : 0); vNorm += v[i] * v[i]; }
    e[k] = alpha;
    if (vNorm === 0) continue; // the column is already alpha·e₁: nothing to reflect
    vNorm = Math.sqrt(vNorm);
    for (let i = k + 1; i < D; i++) v[i] /= vNorm;
    // trailing block S ← H·S·H = S − 2·v·qᵀ − 2·q·vᵀ with p = S·v, q = p − (vᵀp)·v
    let K = 0;
    for (let i = k + 1; i < D; i++) {
      let sum = 0;
      for (let j = k + 1; j < D; j++) sum += A[i * D + j] * v[j];
      p[i] = sum; K += v[i] * sum;
    }
    for (let i = k + 1; i < D; i++) p[i] -= K * v[i];
    for (let i = k + 1; i < D; i++) for (let j = k + 1; j < D; j++) A[i * D + j] -= 2 * (v[i] * p[j] + p[i] * v[j]);
  }
  for (let i = 0; i < D; i++) d[i] = A[i * D + i];
  if (D >= 2) e[D - 2] = A[(D - 1) * D + D - 2]; // e[D − 1] stays 0: nothing below the last row
  // implicit QL on the tridiagonal (d, e): chase each off-diagonal entry to zero, l from the top.
  // An entry counts as zero at rounding level of the matrix's scale (an absolute accuracy, as
  // Jacobi's): relative to its neighbours alone, the near-zero eigenvalues of a rank-deficient
  // covariance (fewer images than features) never converge.
  let scale = 0;
  for (let i = 0; i < D; i++) scale = Math.max(scale, Math.abs(d[i]) + Math.abs(e[i]));
  const negligible = (m: number) => Math.abs(e[m]) <= Number.EPSILON * scale;
  for (let l = 0; l < D; l++) {
    for (let iteration = 0; ; iteration++) {
      let m = l;
      while (m < D - 1 && !negligible(m)) m++;
      if (m === l) break;
      if (iteration === 60) throw new Error("symmetricEigenvalues: no convergence in 60 QL iterations");
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r)); // shift: the eigenvalue of the top 2×2 nearer d[l]
      let s = 1, c = 1, shift = 0, i = m - 1;
      for (; i >= l; i--) {
        const f = s * e[i], b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) { d[i + 1] -= shift; e[m] = 0; break; } // split: deflate and start over
        s = f / r; c = g / r;
        g = d[i + 1] - shift;
        r = (d[i] - g) * s + 2 * c * b;
        shift = s * r;
        d[i + 1] = g + shift;
        g = c * r - b;
      }
      if (r === 0 && i >= l) continue;
      d[l] -= shift; e[l] = g; e[m] = 0;
    }
  }
  return d;
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
    for (const v of symmetricEigenvalues(inner, D)) fd -= 2 * Math.sqrt(Math.max(0, v));
    return fd;
  };
}
