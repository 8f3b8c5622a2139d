/** Learning-rate schedules: pure functions of the step. */

export type LrSchedule = {
  /** `constant` (the reference: constant after warmup) or `cosine` (decay to 0 at the last step). */
  readonly kind: "constant" | "cosine";
  /** Linear warmup from 0 over this many steps. */
  readonly warmup: number;
  /**
   * Linear cool-down to 0 over the last this many steps (0: none): warmup–stable–decay. A run at
   * a constant rate ends wherever its iterate wanders; cooling down settles it (Hägele et al. 2024).
   */
  readonly cooldown?: number;
};

/**
 * Learning rate at `step` (0-based) of `total`:
 * 1. warmup: `lr·(step+1)/warmup` for step < warmup;
 * 2. constant: `lr`;  cosine: `lr·½(1 + cos(π·(step − warmup)/(total − warmup)))`;
 * 3. times `min(1, (total − step)/c)` with `c = min(cooldown, total)` (a short run cools down all
 *    the way): the last step still moves, at `1/c` of the rate.
 */
export function learningRate(step: number, total: number, lr: number, s: LrSchedule): number {
  if (step < s.warmup) return (lr * (step + 1)) / s.warmup;
  const cool = s.cooldown ? Math.min(1, Math.max(0, total - step) / Math.min(s.cooldown, total)) : 1;
  if (s.kind === "constant") return lr * cool;
  const progress = (step - s.warmup) / Math.max(1, total - s.warmup);
  return lr * cool * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
