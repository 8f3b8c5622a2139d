/**
 * Evaluations without Fashion-MNIST installed (issue #14): the main path's evaluation reads the
 * test statistics and the floor from the reference file next to the evaluator, bit for bit what
 * it computes from the data (so every FD is the same to every digit; the generated side does not
 * touch the data); missing data is reported before any work.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, copyFileSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { parseConfig, loadConfig, configOf } from "../../src/config/schema.ts";
import { evalKeys } from "../../src/train/distill.ts";
import { teacherKind } from "../../src/run/kinds.ts";
import { key, foldIn } from "../../src/numerics/random.ts";
import { Evaluator } from "../../src/eval/evaluator.ts";
import { referenceStatistics } from "../../src/stack/teacherReport.ts";
import { allPixels } from "../../src/stack/common.ts";
import { loadFashionMnist } from "../../src/data/fashionMnist.ts";
import { computeReference, writeReferenceFile, referencePath, readReferenceFile, planReference } from "../../src/stack/evaluatorReference.ts";
import { tempDir } from "../tempDir.ts";

const fixture = new URL("../fixtures/fashion-mnist/", import.meta.url).pathname;
const dir = tempDir("tbcm-reference-");
const empty = join(dir, "no-data");
mkdirSync(empty);
const promptsFile = join(dir, "prompts.txt");
writeFileSync(promptsFile, "a photo of a sneaker\na bag\n");

// two copies of the shipped evaluator: one without a reference file, one with the fixture's
const plain = join(dir, "plain", "evaluator.safetensors"), shipped = join(dir, "shipped", "evaluator.safetensors");
for (const p of [plain, shipped]) { mkdirSync(join(p, ".."), { recursive: true }); copyFileSync("models/fmnist/evaluator.safetensors", p); }

function tinyConfig(evaluator: string, dataDir: string, extra: Record<string, unknown> = {}) {
  return parseConfig({
    method: "tbcm", seed: 3, prompts_file: promptsFile,
    teacher: { kind: "stack", evaluator, data_dir: dataDir },
    route: { shift: 2.5, steps: 4 }, guidance: [4.5], train: { steps: 1, prompts_per_step: 2 },
    eval: { samples: 30, curve_noises: 4 },
    ...extra,
  });
}

async function evaluate(cfg: ReturnType<typeof tinyConfig>, out: string) {
  const problem = await teacherKind(cfg.teacher.kind).problem(cfg, evalKeys(cfg.seed));
  const params = problem.initialStudent(foldIn(key(cfg.seed), 1));
  mkdirSync(out, { recursive: true });
  const metrics = await problem.evaluate(params, out, foldIn(key(cfg.seed), 2));
  problem.dispose();
  return metrics;
}

test("the shipped reference belongs to the shipped evaluator and covers the main config without data", () => {
  const file = readReferenceFile("models/fmnist/evaluator.safetensors");
  assert.ok("ref" in file, "reason" in file ? file.reason : "");
  assert.equal(file.ref.testCount, 10000);
  assert.equal(file.ref.test.cov.length, 128 * 128);
  const main = configOf(loadConfig("configs/fmnist-tbcm.yaml"), "stack");
  const plan = planReference(main.teacher.evaluator, empty, main.seed, main.eval.samples);
  assert.deepEqual(plan, { test: "file", floor: "file", floorSeed: 0, floorSamples: 1000 });
  assert.ok(Math.abs(file.ref.floors.find((e) => e.seed === 0 && e.samples === 1000)!.fd - 2.806345) < 1e-6);
});

test("main-path evaluation without the data: test statistics, FDs and floor identical to every digit to the data's", async () => {
  const evaluator = await Evaluator.load(shipped);
  writeReferenceFile(referencePath(shipped), await computeReference(shipped, evaluator, fixture, [{ seed: 3, samples: 30 }]));
  // from the data (no reference file next to `plain`): what every evaluation computed before issue #14
  const withData = await Evaluator.load(plain);
  const fromData = await referenceStatistics(fixture, 3, withData, 30);
  await withData.dispose();
  process.env.TBCM_FASHION_MNIST_DIR = empty; // data_dir "" reads this folder: nothing there
  try {
    assert.deepEqual(planReference(shipped, "", 3, 30), { test: "file", floor: "file", floorSeed: 3, floorSamples: 30 });
    const fromFile = await referenceStatistics("", 3, evaluator, 30);
    // float64 mean and covariance and the predictions, bit for bit (the file keeps no per-image features)
    for (const k of ["mean", "cov", "predictions"] as const) assert.deepEqual(fromFile.test[k], fromData.test[k], k);
    assert.ok(Object.is(fromFile.floor, fromData.floor));
    // an FD against them: the same number
    const some = await evaluator.statistics(allPixels(loadFashionMnist("train", fixture)));
    assert.ok(Object.is(some.frechetDistance(fromFile.test), some.frechetDistance(fromData.test)));
    // the whole evaluation of the main path runs without the data, and reports that floor
    const metrics = await evaluate(tinyConfig(shipped, ""), join(dir, "b"));
    assert.ok(Object.is(metrics.fd_floor, fromData.floor));
    assert.equal(metrics.fd_floor_seed, 3);
    assert.equal(metrics.fd_floor_samples, 30);
    for (const k of ["fd_teacher_16step", "fd_student_1step", "fd_student_2step", "accuracy_student_1step"]) assert.ok(Number.isFinite(metrics[k]), k);
  } finally {
    delete process.env.TBCM_FASHION_MNIST_DIR;
    await evaluator.dispose();
  }
});

test("without the data: another setting's floor stands in, labelled; no reference file or the sCM baseline fail before any work, with the install hint", async () => {
  process.env.TBCM_FASHION_MNIST_DIR = empty;
  try {
    const sub = planReference(shipped, "", 4, 25);
    assert.equal(sub.floor, "substitute");
    assert.deepEqual([sub.floorSeed, sub.floorSamples], [3, 30]);
    assert.match(sub.warning!, /seed 4 with 25 images .* seed 3 with 30 images stands in .*apt-get install dataset-fashion-mnist/);
    // with the data present the floor of the asked setting is computed
    assert.equal(planReference(shipped, fixture, 4, 25).floor, "data");
    const hint = /apt-get install dataset-fashion-mnist.*TBCM_FASHION_MNIST_DIR/;
    await assert.rejects(teacherKind("stack").problem(tinyConfig(plain, ""), evalKeys(3)), (e: Error) => /evaluation needs the Fashion-MNIST test and train splits/.test(e.message) && hint.test(e.message));
    await assert.rejects(teacherKind("stack").problem(tinyConfig(shipped, "", { method: "scm" }), evalKeys(3)), (e: Error) => /sCM baseline \(method: scm\) needs the Fashion-MNIST train split/.test(e.message) && hint.test(e.message));
    // a retrained evaluator makes the file stale
    const stalePath = join(dir, "other", "evaluator.safetensors");
    mkdirSync(join(dir, "other"));
    const bytes = readFileSync(shipped);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(stalePath, bytes);
    copyFileSync(referencePath(shipped), referencePath(stalePath));
    const stale = readReferenceFile(stalePath);
    assert.ok("reason" in stale && /another evaluator/.test(stale.reason));
  } finally {
    delete process.env.TBCM_FASHION_MNIST_DIR;
  }
});
