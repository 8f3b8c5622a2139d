/** The config reader refuses what would lose or corrupt work, with one-line ConfigErrors (issue 14). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, parseConfig, type TbcmConfig } from "../../src/config/schema.ts";
import { loadStackConfig } from "../../src/config/stack.ts";
import { MAX_CONFIG_BYTES, MAX_LIST } from "../../src/config/limits.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-config-");
let n = 0;
const file = (text: string | Buffer) => { const p = join(dir, `c${n++}.yaml`); writeFileSync(p, text); return p; };

function refused(text: string | Buffer, message: RegExp, load: (p: string) => unknown = loadConfig): void {
  const p = file(text);
  assert.throws(() => load(p), (e: Error) => {
    assert.ok(e instanceof ConfigError, `${String(text).slice(0, 60)}: ${e.stack}`);
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n") && e.message.length < 300, e.message);
    return true;
  }, String(text).slice(0, 60));
}

test("NaN and ±Inf are printed as such, not as null", () => {
  refused("guidance_ramp: .nan\n", /"guidance_ramp": expected a number, got \.nan$/);
  refused("eval: {eta: .inf}\n", /"eval\.eta": expected a number, got \.inf$/);
  refused("guidance: [1, -.inf]\n", /"guidance": expected a list of finite numbers, got \[1,-\.inf\]$/);
  refused("teacher: {means: [[1, .nan]]}\n", /"teacher\.means": expected a list of lists of finite numbers, got \[\[1,\.nan\]\]$/);
  refused("train: {steps: .nan}\n", /"train\.steps": expected an integer ≥ 1, got \.nan$/);
});

test("__proto__, constructor and other inherited names are unknown keys", () => {
  refused("__proto__: {method: scm}\n", /unknown config key "__proto__" \(allowed in the top level: method,/);
  refused("constructor: 1\n", /unknown config key "constructor"/);
  refused("train: {toString: 1}\n", /unknown config key "train\.toString"/);
  refused("optim: {hasOwnProperty: 1}\n", /unknown config key "optim\.hasOwnProperty"/);
  refused("vae: {__proto__: {steps: 1}}\nkind: stack\n", /unknown config key "vae\.__proto__"/, loadStackConfig);
});

test("an empty config file is refused", () => {
  for (const text of ["", "\n\n", "# only a comment\n", "---\n", "~\n", "null\n"]) refused(text, /^config file ".*" is empty/);
  refused("", /is empty/, loadStackConfig);
});

test("sizes are bounded before anything is allocated", () => {
  refused("route: {steps: 1e9}\n", /"route\.steps": expected an integer ≤ 1000 .*got 1000000000$/);
  refused("train: {prompts_per_step: 1e9}\n", /"train\.prompts_per_step": expected an integer ≤ 4096/);
  refused("train: {steps: 1e300}\n", /"train\.steps": expected an integer ≤ 10000000/);
  refused("eval: {samples: 100000000}\n", /"eval\.samples": expected an integer ≤ 100000/);
  refused("eval: {curve_noises: 1e7}\n", /"eval\.curve_noises": expected an integer ≤ 4096/);
  refused("teacher: {dim: 1e6}\n", /"teacher\.dim": expected an integer ≤ 4096/);
  refused("teacher: {prompts: 1e8}\n", /"teacher\.prompts": expected an integer ≤ 10000/);
  refused("teacher: {prompts: 10000, components: 1000, dim: 16}\n", /prompts × components × dim = 10000·1000·16 means exceed 10000000/);
  refused("seed: 5000000000\n", /"seed": expected an integer ≤ 4294967295/);
  refused("student: {hidden: 1e6}\n", /"student\.hidden": expected an integer ≤ 4096/);
  refused("teacher: {width: 100000}\nkind: stack\n", /"teacher\.width": expected an integer ≤ 4096/, loadStackConfig);
  refused("vae: {batch: 1e9}\nkind: stack\n", /"vae\.batch": expected an integer ≤ 65536/, loadStackConfig);
  // a list over the bound (as JS: the file-size bound keeps YAML lists this long out of files)
  const long = Array.from({ length: MAX_LIST + 1 }, () => 1);
  for (const raw of [{ guidance: long }, { black_latent: long }, { teacher: { means: [long] } }, { teacher: { means: Array.from({ length: 40_000 }, () => [1, 2, 3]) } }]) {
    assert.throws(() => parseConfig(raw), (e: Error) => e instanceof ConfigError && /expected (a list of at most|lists of at most) \d+ numbers/.test(e.message) && e.message.length < 300, JSON.stringify(raw).slice(0, 40));
  }
  refused("guidance: [4, 4.5, 5, 1, 2]\nguidance_interval: [0, 0.5, 1]\n", /"guidance_interval": expected a list of at most 2 numbers \(it has 3\)/);
  // a 10-million-number list in YAML is ≥ 20 MB: refused by size before it is read or parsed
  const huge = Buffer.alloc(MAX_CONFIG_BYTES + 1, "1,");
  huge.write("guidance: [");
  refused(huge, /has 1048577 bytes; a config is at most 1048576 bytes/);
});

test("billion laughs, deep nesting and other parser bombs are refused quickly", () => {
  let lol = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n';
  let prev = "a";
  for (const k of "bcdefghi") { lol += `${k}: &${k} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]\n`; prev = k; }
  const started = Date.now();
  refused(lol, /is not valid YAML: Excessive alias count/);
  refused(`guidance: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`, /is not valid YAML/);
  refused(`train: ${"{a: ".repeat(50_000)}1${"}".repeat(50_000)}\n`, /is not valid YAML|expected|unknown config key/);
  refused("a: 1\n---\nb: 2\n", /is not valid YAML: Source contains multiple documents/);
  refused("- 1\n- 2\n", /config must be a mapping/);
  assert.ok(Date.now() - started < 20_000);
});

test("the shipped configs still load", () => {
  for (const name of readdirSync("configs")) {
    const path = join("configs", name);
    (name.includes("stack") ? loadStackConfig : loadConfig)(path);
  }
});

/** A seeded generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A resolved config has the default's structure, finite numbers only, and survives JSON (no NaN/Inf/undefined). */
function assertSane(got: unknown, like: unknown, where: string): void {
  if (Array.isArray(like) || Array.isArray(got)) {
    assert.ok(Array.isArray(got), where);
    assert.ok((got as unknown[]).length <= MAX_LIST, where);
    for (const x of got as unknown[]) {
      if (Array.isArray(x)) x.forEach((y) => assert.ok(typeof y === "number" && Number.isFinite(y), where));
      else assert.ok(typeof x === "number" && Number.isFinite(x), where);
    }
  } else if (typeof like === "object" && like !== null) {
    assert.ok(typeof got === "object" && got !== null, where);
    assert.deepEqual(Object.keys(got as object).sort(), Object.keys(like).sort(), where);
    assert.equal(Object.getPrototypeOf(got), Object.prototype, where);
    for (const k of Object.keys(like)) assertSane((got as Record<string, unknown>)[k], (like as Record<string, unknown>)[k], `${where}.${k}`);
  } else {
    assert.equal(typeof got, typeof like, where);
    if (typeof got === "number") assert.ok(Number.isFinite(got) && Math.abs(got) <= 2 ** 53, `${where}: ${got}`);
  }
}

test("fuzz: 420 seeded mutations of the shipped configs are each a one-line ConfigError or a sane config", () => {
  const sources = readdirSync("configs").map((name) => ({ name, text: readFileSync(join("configs", name), "utf8") }));
  const tokens = [":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!float ", "!!binary ", "? ", "|", ">", "'", '"', "#", "\t",
    "\n", "\n  ", " ", ".nan", ".inf", "-.inf", "1e9", "1e400", "-1", "0.5", "~", "null", "true", "0x1F", "0o17", "1_000", "__proto__", "constructor",
    "__proto__: {method: scm}\n", "constructor: {}\n", "<<: *a\n", "%YAML 1.2\n---\n", "---\n", "...\n", "\0", "\uFEFF", "\u2028", "\uFFFD", "é"];
  const values = [".nan", ".inf", "-.inf", "1e9", "1e300", "-5", "2.5", "0", "[]", "{}", "~", '"x"', "[1e9]", "[.nan]", "[[1, 2], [3]]", "&a 5", "*a", "9007199254740993"];
  const structure = { stack: loadStackConfig(file("kind: stack\n")) };
  const counts = { ok: 0, refused: 0 };
  const started = Date.now();
  for (let i = 0; i < 420; i++) {
    const r = rng(7000 + i);
    const src = sources[i % sources.length];
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    let text = src.text;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const lines = text.split("\n");
      const at = Math.floor(r() * (text.length + 1));
      const line = Math.floor(r() * lines.length);
      switch (Math.floor(r() * 9)) {
        case 0: text = text.slice(0, at) + pick(tokens) + text.slice(at); break;
        case 1: text = text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20)); break;
        case 2: text = text.replace(/(:\s*)(-?[0-9][0-9.e+-]*|\[[^\]\n]*\])/g, (m, p: string) => (r() < 0.15 ? p + pick(values) : m)); break;
        case 3: lines.splice(line, 0, lines[line]); text = lines.join("\n"); break;
        case 4: lines.splice(line, 1); text = lines.join("\n"); break;
        case 5: lines[line] = " ".repeat(Math.floor(r() * 6)) + lines[line].trimStart(); text = lines.join("\n"); break;
        case 6: text = text.slice(0, at); break;
        case 7: text = text.slice(0, at) + String.fromCharCode(Math.floor(r() * 0x3000)) + text.slice(at); break;
        default: lines.splice(line, 0, `${pick(["__proto__", "constructor", "prototype", "toString", "train", "eval", "route", "teacher"])}: ${pick(values)}`); text = lines.join("\n");
      }
    }
    const stack = src.name.includes("stack");
    const path = file(text);
    const t0 = Date.now();
    let got: unknown;
    try {
      got = stack ? loadStackConfig(path) : loadConfig(path);
    } catch (e) {
      assert.ok(e instanceof ConfigError, `case ${i} (${src.name}): ${(e as Error)?.stack ?? e}\n--- text:\n${text.slice(0, 400)}`);
      assert.ok(!/[\r\n]/.test(e.message) && e.message.length < 400, `case ${i}: ${e.message}`);
      counts.refused++;
      continue;
    } finally {
      assert.ok(Date.now() - t0 < 2000, `case ${i} took ${Date.now() - t0} ms`);
    }
    // a distill config has the structure of the defaults of its teacher and optimiser kinds (unions by kind)
    const like = stack ? structure.stack : parseConfig({ teacher: { kind: (got as TbcmConfig).teacher.kind }, optim: { kind: (got as TbcmConfig).optim.kind } });
    assertSane(got, like, `case ${i} (${src.name})`);
    assert.deepEqual(JSON.parse(JSON.stringify(got)), got, `case ${i}: survives JSON`);
    counts.ok++;
  }
  if (process.env.TBCM_FUZZ_VERBOSE) console.log(counts);
  assert.ok(counts.ok > 40 && counts.refused > 100, JSON.stringify(counts));
  assert.ok(Date.now() - started < 30_000);
});
