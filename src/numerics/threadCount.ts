/** The project's one thread knob, TBCM_THREADS (no side effects: safe to import anywhere). */

/** Threads from TBCM_THREADS; 1 when unset (faster for the small models here, see bench/RESULTS.md). */
export function threadCount(setting: string | undefined = process.env.TBCM_THREADS): number {
  if (setting === undefined || setting === "") return 1;
  const n = Number(setting);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TBCM_THREADS=${setting} is not a positive integer; unset it for 1 thread`);
  return n;
}
