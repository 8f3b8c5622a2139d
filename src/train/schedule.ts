/** Learning-rate schedules: pure functions of the step. */

export type LrSchedule = {
  /** `constant` (the reference: constant after warmup) or `cosine` (decay to 0 at the last step). */
  readonly kind: "constant" | "cosine";
  /** Linear warmup from 0 over this many steps. */
  readonly warmup: number;
};

/**
 * Learning rate at `step` (0-based) of `total`:
 * 1. warmup: `lr·(step+1)/warmup` for step < warmup;
 * 2. constant: `lr`;  cosine: `lr·½(1 + cos(π·(step − warmup)/(total − warmup)))`.
 */
export function learningRate(step: number, total: number, lr: number, s: LrSchedule): number {
  if (step < s.warmup) return (lr * (step + 1)) / s.warmup;
  if (s.kind === "constant") return lr;
  const progress = (step - s.warmup) / Math.max(1, total - s.warmup);
  return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
