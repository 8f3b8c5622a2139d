/**
 * `tbcm check-bundle` (src/bundle/check.ts) on the shipped teacher's bundle: what a run would
 * distil (its inputs, 400 prompts of the table, the time embedding, the guidance scales), the
 * import against onnxruntime on the file, the noise spread, the decoder's image size; and, from
 * the command line, a bundle that is not there is one line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import "../../src/numerics/threads.ts";
import { checkBundle } from "../../src/bundle/check.ts";
import { exportTeacherBundle } from "../../src/bundle/exportTeacher.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-check-bundle-");
const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;

test("check-bundle on the shipped teacher's bundle: what a run distils, and its checks", async () => {
  const bundle = join(dir, "shipped");
  await exportTeacherBundle(bundle);
  const r = await checkBundle(bundle, { promptsFile: "prompts/train.txt" });
  assert.deepEqual(r.inputs.map((i) => i.name), ["latent", "timestep", "encoder_hidden_states"]);
  assert.deepEqual(r.latentShape, [7, 7, 4]);
  assert.equal(r.prompts, 400);
  assert.equal(r.unconditional, false);
  assert.equal(r.timeEmbedding, "time_embedding");
  assert.deepEqual(r.guidanceScales, [4, 4.5, 5]);
  assert.ok(r.teacherImportRelError < 1e-5, `import ${r.teacherImportRelError}`);
  assert.ok(r.teacherNoiseSpread > 0.1 && r.teacherNoiseSpread < 0.5, `noise spread ${r.teacherNoiseSpread}`);
  assert.ok(r.teacherStepMs > 0);
  assert.deepEqual(r.decoder, { channels: 1, height: 28, width: 28 });
  assert.equal(r.studentExports, true);
  assert.deepEqual(r.warnings, []);
});

test("check-bundle on a folder without a bundle: one line, no stack", () => {
  const p = spawnSync(process.execPath, [bin, "check-bundle", "--dir", join(dir, "nowhere")], { encoding: "utf8" });
  assert.notEqual(p.status, 0);
  assert.match(p.stderr.split("\n")[0], /no teacher bundle at ".*nowhere": cannot read .*teacher\.json/);
  assert.doesNotMatch(p.stderr, /\n\s+at /);
});
