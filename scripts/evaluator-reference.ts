/**
 * Writes (or checks) an evaluator's reference statistics, the file evaluations read when
 * Fashion-MNIST is not installed (src/stack/evaluatorReference.ts):
 *
 *   npx tsx scripts/evaluator-reference.ts [--evaluator models/fmnist/evaluator.safetensors]
 *       [--data-dir DIR] [--floor SEED:N …] [--check]
 *
 * computes the test split's evaluator statistics and the FD floor of each SEED:N (default 0:1000,
 * the main config's seed and eval.samples) from the data set, and writes
 * `<evaluator>-reference.safetensors` next to the evaluator. `--check` recomputes and compares
 * with the existing file bit for bit instead of writing (exit 1 on any difference).
 */
import "../src/numerics/threads.ts";
import { parseArgs } from "node:util";
import { Evaluator } from "../src/eval/evaluator.ts";
import { computeReference, readReferenceFile, referencePath, writeReferenceFile } from "../src/stack/evaluatorReference.ts";

const { values } = parseArgs({
  options: {
    evaluator: { type: "string", default: "models/fmnist/evaluator.safetensors" },
    "data-dir": { type: "string", default: "" },
    floor: { type: "string", multiple: true },
    check: { type: "boolean" },
  },
});
const settings = (values.floor ?? ["0:1000"]).map((s) => {
  const [seed, samples] = s.split(":").map(Number);
  if (!Number.isInteger(seed) || !Number.isInteger(samples) || samples < 2) throw new Error(`--floor takes SEED:N (whole numbers), got "${s}"`);
  return { seed, samples };
});
const t0 = performance.now();
const evaluator = await Evaluator.load(values.evaluator);
const ref = await computeReference(values.evaluator, evaluator, values["data-dir"], settings);
await evaluator.dispose();
const out = referencePath(values.evaluator);
if (values.check) {
  const file = readReferenceFile(values.evaluator);
  if (!("ref" in file)) { console.error(file.reason); process.exit(1); }
  const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));
  const diffs = [
    !same(file.ref.test.mean, ref.test.mean) && "test mean",
    !same(file.ref.test.cov, ref.test.cov) && "test covariance",
    !same(file.ref.test.predictions, ref.test.predictions) && "test predictions",
    ...ref.floors.map((e) => {
      const f = file.ref.floors.find((g) => g.seed === e.seed && g.samples === e.samples);
      return (!f || !Object.is(f.fd, e.fd)) && `floor ${e.seed}:${e.samples} (file ${f?.fd}, data ${e.fd})`;
    }),
  ].filter(Boolean);
  if (diffs.length) { console.error(`${out} differs from the data: ${diffs.join("; ")}`); process.exit(1); }
  console.log(`${out} matches the data to every bit (${ref.testCount} test images; floors ${ref.floors.map((e) => `${e.seed}:${e.samples} = ${e.fd}`).join(", ")})`);
} else {
  writeReferenceFile(out, ref);
  console.log(`wrote ${out}: ${ref.testCount} test images; floors ${ref.floors.map((e) => `${e.seed}:${e.samples} = ${e.fd}`).join(", ")} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
