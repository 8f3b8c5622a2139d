/**
 * Two samplers compared on the same prompts and noises (a student at 2 and 4 steps, a student and
 * its teacher): the difference of their metrics and its standard error. Image i of either set comes
 * from the same prompt and starting noise, so most of a draw's luck is shared and cancels in the
 * difference; what is left is the error bar of the comparison itself. (FD on 1,000 images moves by
 * ±0.3 between noise draws, bench/RESULTS.md §29; a 4-vs-2 difference of 0.1 says nothing without it.)
 */
import { type Key, foldIn, uniform } from "../numerics/random.ts";
import { featureMoments, frechetTo } from "./frechet.ts";
import type { ImageStatistics } from "./evaluator.ts";

export type Difference = { readonly difference: number; readonly se: number };

/**
 * Prompt accuracy of `a` minus that of `b`, image for image: the mean of `d_i = [a_i = y_i] − [b_i = y_i]`
 * and its standard error `sd(d)/√n` (predictions `a`, `b`, labels `y`, all of length n ≥ 2).
 */
export function pairedAccuracy(a: ArrayLike<number>, b: ArrayLike<number>, labels: ArrayLike<number>): Difference {
  const n = labels.length;
  if (a.length !== n || b.length !== n || n < 2) throw new Error(`paired accuracy needs two prediction sets as long as the labels (≥ 2), got ${a.length}, ${b.length}, ${n}`);
  let sum = 0, squares = 0;
  for (let i = 0; i < n; i++) {
    const d = Number(a[i] === labels[i]) - Number(b[i] === labels[i]);
    sum += d;
    squares += d * d;
  }
  const mean = sum / n;
  return { difference: mean, se: Math.sqrt(Math.max(0, squares - n * mean * mean) / (n - 1) / n) };
}

/**
 * The FD to `reference` of each image set on `resamples` bootstrap resamples of the image indices,
 * the same indices for every set (features [n·D] each, row i of every set from the same prompt and
 * noise): `fds[set][resample]`. The spread over resamples of `fds[a][r] − fds[b][r]` is the standard
 * error of FD(a) − FD(b) (`fdDifference`).
 */
export function bootstrapFds(sets: readonly Float32Array[], D: number, reference: { mean: Float64Array; cov: Float64Array }, resamples: number, k: Key): number[][] {
  const n = sets[0].length / D;
  if (sets.some((f) => f.length !== n * D) || !Number.isInteger(n) || n < 2) throw new Error(`bootstrapped FD needs feature sets of the same n ≥ 2 rows of ${D}`);
  const toReference = frechetTo(reference.mean, reference.cov);
  const fds = sets.map(() => new Array<number>(resamples));
  const rows = new Float32Array(n * D);
  for (let r = 0; r < resamples; r++) {
    const pick = uniform(foldIn(k, r), n, 0, n); // resample r's indices, shared by every set
    sets.forEach((f, s) => {
      for (let i = 0; i < n; i++) {
        const j = Math.min(n - 1, Math.floor(pick[i]));
        rows.set(f.subarray(j * D, (j + 1) * D), i * D);
      }
      const { mean, cov } = featureMoments(rows, n, D);
      fds[s][r] = toReference(mean, cov);
    });
  }
  return fds;
}

/** FD(a) − FD(b) on the full sets, with the standard deviation of its bootstrap replicates as its error. */
export function fdDifference(fdA: number, fdB: number, bootA: readonly number[], bootB: readonly number[]): Difference {
  const d = bootA.map((x, r) => x - bootB[r]);
  const mean = d.reduce((s, x) => s + x, 0) / d.length;
  const variance = d.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, d.length - 1);
  return { difference: fdA - fdB, se: Math.sqrt(variance) };
}

/**
 * Bootstrap resamples behind each FD difference's error: the error itself to ≈ 10 % (1/√(2·49)).
 * Each resample costs one covariance and one eigenvalue solve per set, ≈ 0.1 s for the main
 * command's four sets of 1,000 images (bench/frechet.bench.ts).
 */
export const PAIRED_RESAMPLES = 50;

/**
 * The run's paired comparisons, as metrics: each student step count against the teacher
 * (`fd_2step_minus_teacher`, `accuracy_2step_minus_teacher`) and against the step count before it
 * (`fd_4step_minus_2step`, …), each with its standard error (`…_se`). `measured` holds the image
 * sets by metric name (`teacher_16step`, `student_<n>step`), all of the same prompts and noises,
 * with the FD to `reference` the evaluation already computed for each.
 */
export function pairedDifferences(measured: ReadonlyMap<string, { statistics: ImageStatistics; fd: number }>, reference: ImageStatistics, labels: ArrayLike<number>, D: number, k: Key): Record<string, number> {
  const teacher = measured.get("teacher_16step");
  const steps = [...measured.keys()].map((name) => /^student_(\d+)step$/.exec(name)?.[1]).filter((s): s is string => s !== undefined).map(Number).sort((a, b) => a - b);
  if (!teacher || steps.length === 0) return {};
  const sets = [teacher, ...steps.map((s) => measured.get(`student_${s}step`)!)];
  const boot = bootstrapFds(sets.map((x) => x.statistics.features), D, reference, PAIRED_RESAMPLES, k);
  const out: Record<string, number> = {};
  const compare = (name: string, a: number, b: number) => {
    const fd = fdDifference(sets[a].fd, sets[b].fd, boot[a], boot[b]);
    const acc = pairedAccuracy(sets[a].statistics.predictions, sets[b].statistics.predictions, labels);
    Object.assign(out, { [`fd_${name}`]: fd.difference, [`fd_${name}_se`]: fd.se, [`accuracy_${name}`]: acc.difference, [`accuracy_${name}_se`]: acc.se });
  };
  steps.forEach((s, i) => {
    compare(`${s}step_minus_teacher`, i + 1, 0);
    if (i > 0) compare(`${s}step_minus_${steps[i - 1]}step`, i + 1, i);
  });
  return out;
}
