/**
 * The evaluation's FD arithmetic at the evaluator's size (128 features): one FD term's eigensolve
 * (Jacobi with vectors vs eigenvalues alone by QL) and one bootstrap of the paired differences
 * (four image sets against the test statistics), median ms. Ratios, not absolute times, carry over
 * between machines (time comparisons in one run).
 *
 *   npx tsx bench/frechet.bench.ts [--samples 1000] [--resamples 25] [--iters 9]
 */
import { parseArgs } from "node:util";
import { featureMoments, symmetricEigen, symmetricEigenvalues } from "../src/eval/frechet.ts";
import { bootstrapFds } from "../src/eval/paired.ts";
import { key, normal } from "../src/numerics/random.ts";

const { values } = parseArgs({ options: { samples: { type: "string" }, resamples: { type: "string" }, iters: { type: "string" } } });
const n = Number(values.samples ?? 1000), resamples = Number(values.resamples ?? 25), iters = Number(values.iters ?? 9);
const D = 128;
const median = (f: () => void) => {
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) { const t = performance.now(); f(); ms.push(performance.now() - t); }
  return ms.sort((a, b) => a - b)[Math.floor(iters / 2)];
};
// features with a spread of scales, as the evaluator's are
const features = (seed: number) => normal(key(seed), n * D).map((x, i) => x * (0.2 + (i % D) / D));
const sets = [1, 2, 3, 4].map(features);
const reference = featureMoments(features(9), n, D);
const { cov } = featureMoments(sets[0], n, D);
const jacobi = median(() => symmetricEigen(cov, D));
const ql = median(() => symmetricEigenvalues(cov, D));
const moments = median(() => featureMoments(sets[0], n, D));
const boot = median(() => bootstrapFds(sets, D, reference, resamples, key(0)));
console.log(`| part (${D} features, ${n} images) | median ms |\n|---|---|`);
console.log(`| eigensolve, Jacobi (values and vectors) | ${jacobi.toFixed(1)} |`);
console.log(`| eigenvalues, Householder + QL | ${ql.toFixed(1)} |`);
console.log(`| mean and covariance of one set | ${moments.toFixed(1)} |`);
console.log(`| bootstrap, 4 sets × ${resamples} resamples | ${boot.toFixed(0)} |`);
console.log(`Jacobi / QL: ${(jacobi / ql).toFixed(1)}×`);
