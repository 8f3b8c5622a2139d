/**
 * The npm package as a plain-JavaScript user gets it (issue #14): `npm pack` (its prepare step
 * compiles dist/), the tarball installed into an empty project without the repo, `import … from
 * "tbcm"` in a .mjs file (and `require("tbcm")` in a .cjs one) running real work on the shipped models from a folder that has none, and
 * the `tbcm` bin. The install takes the dependencies from npm's cache (`--offline`), else from the
 * registry (`--prefer-offline`), else links them from this checkout's node_modules; install
 * scripts are skipped (onnxruntime-node's would fetch CUDA libraries from nuget).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync, existsSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../tempDir.ts";

const repo = new URL("../../", import.meta.url).pathname;
const dir = tempDir("tbcm-pack-");
// npm's script environment (npm_config_local_prefix, …) must not steer the npm commands below
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
env.ONNXRUNTIME_NODE_INSTALL = "skip";

function run(cmd: string, args: string[], cwd: string, extra: Record<string, string> = {}) {
  return spawnSync(cmd, args, { cwd, env: { ...env, ...extra }, encoding: "utf8", timeout: 120_000 });
}

test("npm pack → install into an empty project → import from a .mjs file and run the bin", () => {
  const packed = run("npm", ["pack", "--json", "--pack-destination", dir], repo);
  assert.equal(packed.status, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("[")));
  const files: string[] = info.files.map((f: { path: string }) => f.path);
  assert.ok(files.includes("dist/src/index.js") && files.includes("dist/src/index.d.ts") && files.includes("dist/src/cli/main.js"));
  for (const f of ["models/fmnist/teacher.safetensors", "models/fmnist/evaluator-reference.safetensors", "prompts/eval.txt", "configs/fmnist-tbcm.yaml", "web/tbcm-generator.js", "bin/tbcm.js"]) {
    assert.ok(files.includes(f), f);
  }
  assert.ok(!files.some((f) => /^(src|test|bench|scripts)\//.test(f) || f.startsWith("models/fmnist/runs/")), "no sources, tests, benches or scripts");
  assert.ok(info.size < 12e6, `tarball ${info.size} bytes`);

  const project = join(dir, "project");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "plain-user", private: true, type: "module" }));
  const tarball = join(dir, info.filename);
  let how = "";
  for (const mode of ["--offline", "--prefer-offline"]) {
    const r = run("npm", ["install", mode, "--ignore-scripts", "--no-audit", "--no-fund", tarball], project);
    if (r.status === 0) { how = `npm install ${mode}`; break; }
  }
  let bin = join(project, "node_modules", ".bin", "tbcm");
  if (!how) {
    // no cache, no registry: the package unpacked, its dependencies linked from this checkout
    const into = join(project, "node_modules", "tbcm");
    mkdirSync(into, { recursive: true });
    assert.equal(run("tar", ["xzf", tarball, "-C", into, "--strip-components=1"], project).status, 0);
    const deps = Object.keys(JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).dependencies);
    for (const d of deps) {
      mkdirSync(join(project, "node_modules", d, ".."), { recursive: true });
      symlinkSync(join(repo, "node_modules", d), join(project, "node_modules", d));
    }
    bin = join(into, "bin", "tbcm.js");
    how = "unpacked, dependencies linked";
  }
  assert.ok(existsSync(bin), `${bin} (${how})`);

  writeFileSync(join(project, "smoke.mjs"), `
import { routeAngles, parseConfig, sampleImages } from "tbcm";
import { key, normal } from "tbcm/web";
const route = routeAngles(2.5, 4);
const cfg = parseConfig({ method: "tbcm", teacher: { kind: "stack" } });
// the shipped teacher and VAE (library defaults), from a folder without models/
const r = await sampleImages({ prompts: ["a photo of a sneaker", "a bag"], steps: 2, seed: 1 });
const mean = r.pixels.reduce((s, v) => s + v, 0) / r.pixels.length;
console.log(JSON.stringify({ route, method: cfg.method, evaluator: cfg.teacher.evaluator, pixels: r.pixels.length, mean, noise: normal(key(0), 2).length }));
`);
  const smoke = run(process.execPath, ["smoke.mjs"], project);
  assert.equal(smoke.status, 0, smoke.stderr);
  const out = JSON.parse(smoke.stdout.trim().split("\n").at(-1)!);
  assert.equal(out.route.length, 4);
  assert.equal(out.method, "tbcm");
  assert.equal(out.pixels, 2 * 784);
  assert.ok(out.mean > 0.01 && out.mean < 0.99, `mean pixel ${out.mean}`);
  assert.equal(out.noise, 2);

  // a CommonJS user: require("tbcm") (Node ≥ 20.19 loads the ES module), and the same images
  writeFileSync(join(project, "smoke.cjs"), `
const { sampleImages } = require("tbcm");
sampleImages({ prompts: ["a photo of a sneaker", "a bag"], steps: 2, seed: 1 }).then((r) => {
  console.log(JSON.stringify({ mean: r.pixels.reduce((s, v) => s + v, 0) / r.pixels.length }));
});
`);
  const cjs = run(process.execPath, ["smoke.cjs"], project);
  assert.equal(cjs.status, 0, cjs.stderr);
  assert.equal(JSON.parse(cjs.stdout.trim().split("\n").at(-1)!).mean, out.mean);

  // the bin: the compiled CLI (no src/ in the package), with jax-js's worker pool (TBCM_THREADS=2)
  const schedule = run(process.execPath, [bin, "schedule", "--steps", "4", "--json"], project, { TBCM_THREADS: "2" });
  assert.equal(schedule.status, 0, schedule.stderr);
  assert.equal(JSON.parse(schedule.stdout).length, 4);
  const sample = run(process.execPath, [bin, "sample", "--model", "teacher", "--prompt", "a bag", "--n", "2", "--steps", "2", "--out", "bags.png"], project, { TBCM_THREADS: "2" });
  assert.equal(sample.status, 0, sample.stderr);
  assert.ok(existsSync(join(project, "bags.png")));
});
