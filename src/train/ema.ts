/**
 * Exponential moving average of parameters, kept on the host: `ē ← d·ē + (1 − d)·θ` after every
 * applied step, with `d = min(decay, (1 + s)/(10 + s))` so the average forgets its start quickly
 * (a constant d near 1 would hold the initial weights for thousands of steps).
 *
 * The warm-up rule binds until step ≈ 9/(1 − decay) (≈ 9,000 at 0.999): before that, the average
 * weighs step s of S by ≈ 9·s⁸/S⁹, i.e. it is a power-function average of roughly the last 10–20 %
 * of the steps taken, whatever `decay` says (bench/RESULTS.md §26).
 */
export function emaDecayAt(decay: number, step: number): number {
  return Math.min(decay, (1 + step) / (10 + step));
}

/** Moves `average` (in place) toward `current` for step `step`. */
export function updateEma(average: Float32Array[], current: readonly Float32Array[], decay: number, step: number): void {
  const d = emaDecayAt(decay, step);
  current.forEach((p, i) => {
    const e = average[i];
    for (let j = 0; j < p.length; j++) e[j] += (1 - d) * (p[j] - e[j]);
  });
}
