/** Distances between sample sets on the host (float64 accumulation). */
import { type Key, normal } from "../numerics/random.ts";

/**
 * Sliced Wasserstein-2 between equal-size sample sets a, b ([n·d] each): the root mean over
 * random unit directions of the 1-D W2² between the projected, sorted samples.
 */
export function slicedWasserstein2(a: Float32Array, b: Float32Array, d: number, projections: number, k: Key): number {
  const n = a.length / d;
  if (b.length !== a.length) throw new Error(`sliced W2 needs equal sample counts, got ${n} and ${b.length / d}`);
  const dirs = normal(k, projections * d);
  let total = 0;
  const pa = new Float64Array(n);
  const pb = new Float64Array(n);
  for (let p = 0; p < projections; p++) {
    const dir = dirs.subarray(p * d, (p + 1) * d);
    const norm = Math.hypot(...dir);
    for (let i = 0; i < n; i++) {
      let sa = 0, sb = 0;
      for (let j = 0; j < d; j++) { sa += a[i * d + j] * dir[j]; sb += b[i * d + j] * dir[j]; }
      pa[i] = sa / norm; pb[i] = sb / norm;
    }
    pa.sort(); pb.sort();
    let w2 = 0;
    for (let i = 0; i < n; i++) w2 += (pa[i] - pb[i]) ** 2;
    total += w2 / n;
  }
  return Math.sqrt(total / projections);
}

/** `Σ‖a − b‖² / Σ‖b‖²` over all rows: the relative squared error of a against the reference b. */
export function relativeMse(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return num / den;
}
