/**
 * Post-hoc parameter averaging (issue #13, bench/RESULTS.md §26): the element-wise mean of kept
 * students (`train.snapshot_every`) of one run, written as a student file with the metadata of the
 * last one. With a constant learning rate the snapshots are points of one trajectory, so their mean
 * is a longer average than the run's own (whose warm-up rule keeps it at roughly the last 10 % of
 * the steps taken, see src/train/ema.ts). Measure the result with `bench/snapshot-curve.ts`.
 *
 *   npx tsx bench/average-students.ts OUT.safetensors runs/long/snapshots/student-00{3,4,5}*.safetensors
 */
import { loadSafetensors, saveSafetensors, type HostTensor } from "../src/numerics/safetensors.ts";

const [out, ...inputs] = process.argv.slice(2);
if (!out || inputs.length === 0) throw new Error("usage: average-students.ts OUT STUDENT...");
const files = inputs.map((f) => loadSafetensors(f));
const sum = new Map<string, HostTensor>();
for (const [name, t] of files[0].tensors) sum.set(name, { shape: t.shape.slice(), data: new Float32Array(t.data.length) });
for (const [i, { tensors }] of files.entries()) {
  if (tensors.size !== sum.size) throw new Error(`${inputs[i]}: ${tensors.size} tensors, the first file has ${sum.size}`);
  for (const [name, t] of tensors) {
    const acc = sum.get(name);
    if (!acc || acc.data.length !== t.data.length) throw new Error(`${inputs[i]}: tensor "${name}" does not match the first file`);
    for (let j = 0; j < t.data.length; j++) acc.data[j] += t.data[j] / files.length;
  }
}
saveSafetensors(out, sum, files.at(-1)!.metadata);
console.log(`${out}: the mean of ${files.length} students (step ${files.at(-1)!.metadata.step ?? "?"})`);
