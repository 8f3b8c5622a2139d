import { test } from "node:test";
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { describeConfig, parseConfig, readYaml } from "../../src/config/schema.ts";

test("tbcm config: every key as YAML that reads back to the same config, with what each key accepts; bad keys fail as in a run", () => {
  for (const raw of [{}, readYaml("configs/fmnist-tbcm.yaml"), readYaml("configs/gmm.yaml")]) {
    assert.deepEqual(parseConfig(parseYaml(describeConfig(raw))), parseConfig(raw));
  }
  assert.match(describeConfig({}), /^method: "tbcm" +# tbcm \| scm$/m);
  assert.match(describeConfig({}), /^ {2}eta: 1 +# number ≥ 0, ≤ 1$/m);
  assert.match(describeConfig(readYaml("configs/fmnist-tbcm-everywhere.yaml")), /^ {2}eta: 0\.95 +# number ≥ 0, ≤ 1 \(set\)$/m);
  assert.throws(() => describeConfig({ optim: { lrr: 1 } }), /unknown config key "optim\.lrr"/);
  // strings are quoted as they are (a comma in a path stays a comma)
  assert.match(describeConfig({ prompts_file: "a,b.txt" }), /^prompts_file: "a,b\.txt" +# string \(set\)$/m);
});

test("the bundle template distils with the main command's method settings: only the teacher and the evaluation's size differ", () => {
  const main = parseConfig(readYaml("configs/fmnist-tbcm.yaml")), bundle = parseConfig(readYaml("configs/bundle-tbcm.yaml"));
  assert.equal(bundle.teacher.kind, "onnx");
  for (const k of ["method", "executor", "seed", "promptsFile", "route", "guidanceInterval", "guidanceRamp", "loss", "optim", "train"] as const) {
    assert.deepEqual(bundle[k], main[k], k);
  }
  for (const k of ["twoStepMid", "eta", "multiStep", "curveNoises"] as const) assert.deepEqual(bundle.eval[k], main.eval[k], `eval.${k}`);
});
