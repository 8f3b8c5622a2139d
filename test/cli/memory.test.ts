/**
 * A command that outgrows the memory it may use stops with one line saying what to lower, instead
 * of the kernel's silent kill (src/cli/memoryWatch.ts). The limit is set low here with
 * TBCM_MEMORY_LIMIT_MB; a bad value of it is a one-line error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { totalmem } from "node:os";
import { join } from "node:path";
import { memoryLimit } from "../../src/cli/memoryWatch.ts";
import { tempDir } from "../tempDir.ts";

const bin = new URL("../../bin/tbcm.js", import.meta.url).pathname;
const dir = tempDir("tbcm-memory-");
const tbcm = (env: Record<string, string>, ...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, ...env } });

test("the memory limit: the machine's or the container's, or TBCM_MEMORY_LIMIT_MB", () => {
  const own = memoryLimit({});
  assert.ok(own.bytes > 0 && own.bytes <= totalmem(), `${own.bytes} bytes (${own.source})`);
  assert.deepEqual(memoryLimit({ TBCM_MEMORY_LIMIT_MB: "512" }), { bytes: 512 * 2 ** 20, source: "TBCM_MEMORY_LIMIT_MB" });
  for (const bad of ["0", "-5", "lots", ""]) assert.throws(() => memoryLimit({ TBCM_MEMORY_LIMIT_MB: bad }), /TBCM_MEMORY_LIMIT_MB must be a number of megabytes > 0/);
});

test("past 90 % of the limit the command stops with one line naming the sizes and what to lower, not a silent kill", () => {
  const r = tbcm({ TBCM_MEMORY_LIMIT_MB: "150" }, "distill", "--config", "test/fixtures/tiny.yaml", "--out", join(dir, "run"));
  assert.equal(r.signal, "SIGKILL");
  const line = r.stderr.split("\n").find((l) => l.startsWith("tbcm: stopped"));
  assert.ok(line, r.stderr);
  assert.match(line, /^tbcm: stopped before running out of memory: the process holds \d+ MB of 150 MB \(TBCM_MEMORY_LIMIT_MB\); .*lower train\.prompts_per_step/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});

test("a TBCM_MEMORY_LIMIT_MB that is not a size is a one-line error", () => {
  const r = tbcm({ TBCM_MEMORY_LIMIT_MB: "lots" }, "schedule");
  assert.equal(r.status, 1);
  assert.match(r.stderr.split("\n")[0], /^tbcm: TBCM_MEMORY_LIMIT_MB must be a number of megabytes > 0, got "lots"$/);
});
