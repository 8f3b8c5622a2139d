/** Everything read back from a checkpoint or a parameter file is validated (issue 14). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { numpy as np, tree } from "@jax-js/jax";
import { adamw } from "../../src/train/optim.ts";
import { saveCheckpoint, loadCheckpoint } from "../../src/train/checkpoint.ts";
import { saveParams, loadParams } from "../../src/numerics/params.ts";
import { loadSafetensors, saveSafetensors, type HostTensor } from "../../src/numerics/safetensors.ts";
import type { Tree } from "../../src/numerics/tree.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-ckpt-");
const opt = adamw({ kind: "adamw", lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
const like = () => ({ w: np.array([[1, 2, 3], [4, 5, 6]]), b: np.array([0.5, -0.5, 1]) });
const stateOf = (p: ReturnType<typeof like>) => opt.init([p.w.ref, p.b.ref]);

const good = join(dir, "good.safetensors");
{
  const p = like();
  const s = stateOf(p);
  saveCheckpoint(good, { params: p, state: s, step: 42, config: JSON.stringify({ seed: 1 }), ema: [new Float32Array(6), Float32Array.from([1, 1, 1])] });
  tree.dispose([p, s as unknown as Tree]);
}

/** A copy of the good checkpoint with its metadata and tensors edited. */
function edited(name: string, edit: (m: Record<string, string>, t: Map<string, HostTensor>) => void): string {
  const { tensors, metadata } = loadSafetensors(good);
  edit(metadata, tensors);
  const path = join(dir, `${name}.safetensors`);
  saveSafetensors(path, tensors, metadata);
  return path;
}

function load(path: string) {
  const p = like();
  const s = stateOf(p);
  try {
    return loadCheckpoint(path, p, s);
  } finally {
    tree.dispose([p, s as unknown as Tree]);
  }
}

test("a good checkpoint loads with its step, config, state and average", () => {
  const c = load(good);
  assert.equal(c.step, 42);
  assert.deepEqual(JSON.parse(c.config), { seed: 1 });
  assert.deepEqual(Array.from(c.params.w.ref.dataSync()), [1, 2, 3, 4, 5, 6]);
  assert.equal(c.ema?.length, 2);
  tree.dispose([c.params, c.state as unknown as Tree]);
});

test("a damaged checkpoint is a one-line error naming the file, never a resume", () => {
  const cases: [string, (m: Record<string, string>, t: Map<string, HostTensor>) => void, RegExp][] = [
    ["step-abc", (m) => { m.step = "abc"; }, /checkpoint step "abc" is not an integer from 0 to 10000000/],
    ["step-negative", (m) => { m.step = "-5"; }, /checkpoint step "-5"/],
    ["step-fraction", (m) => { m.step = "50.5"; }, /checkpoint step "50\.5"/],
    ["step-huge", (m) => { m.step = "1e9"; }, /checkpoint step "1e9"/],
    ["step-beyond", (m) => { m.step = "1000000000"; }, /checkpoint step "1000000000"/],
    ["step-empty", (m) => { m.step = ""; }, /checkpoint step ""/],
    ["step-spaces", (m) => { m.step = " 7"; }, /checkpoint step " 7"/],
    ["step-missing", (m) => { delete m.step; }, /checkpoint step null/],
    ["config-not-json", (m) => { m.config = "{seed: 1"; }, /the checkpoint's config is not a JSON object/],
    ["config-not-object", (m) => { m.config = "[1]"; }, /the checkpoint's config is not a JSON object/],
    ["config-missing", (m) => { delete m.config; }, /the checkpoint's config is not a JSON object/],
    ["format", (m) => { m.format = "x"; }, /is not a tbcm checkpoint/],
    ["missing-param", (_, t) => { t.delete("params.w"); }, /missing parameter tensor "params\.w"/],
    ["extra-param", (_, t) => { t.set("params.z", { shape: [1], data: new Float32Array(1) }); }, /unexpected parameter tensor "params\.z"/],
    ["param-shape", (_, t) => { t.set("params.w", { shape: [3, 2], data: new Float32Array(6) }); }, /parameter tensor "params\.w" has shape \[3,2\], expected \[2,3\]/],
    ["missing-state", (_, t) => { t.delete("opt.1.nu"); }, /missing optimiser state tensor "opt\.1\.nu"/],
    ["state-shape", (_, t) => { t.set("opt.0.mu", { shape: [4], data: new Float32Array(4) }); }, /optimiser state tensor "opt\.0\.mu" has shape \[4\], expected \[2,3\]/],
    ["state-extra", (_, t) => { t.set("opt.2.mu", { shape: [1], data: new Float32Array(1) }); }, /unexpected optimiser state tensor "opt\.2\.mu"/],
    ["ema-incomplete", (_, t) => { t.delete("ema.w"); }, /missing parameter average tensor "ema\.w"/],
    ["ema-shape", (_, t) => { t.set("ema.b", { shape: [2], data: new Float32Array(2) }); }, /parameter average tensor "ema\.b" has shape \[2\]/],
    ["foreign-tensor", (_, t) => { t.set("junk", { shape: [1], data: new Float32Array(1) }); }, /unexpected tensor "junk" in a checkpoint/],
    ["nan-param", (_, t) => { t.get("params.w")!.data[4] = NaN; }, /tensor "params\.w" holds 1 NaN\/Inf value/],
    ["inf-state", (_, t) => { t.get("opt.1.nu")!.data.fill(Infinity); }, /tensor "opt\.1\.nu" holds 3 NaN\/Inf values/],
  ];
  for (const [name, edit, message] of cases) {
    const path = edited(name, edit);
    assert.throws(() => load(path), (e: Error) => {
      assert.match(e.message, message, name);
      assert.ok(e.message.includes(`"${path}"`), `${name}: ${e.message}`);
      assert.ok(!e.message.includes("\n"), name);
      return true;
    }, name);
  }
  // steps may go up to an explicit bound
  const path = edited("step-big", (m) => { m.step = "20000000"; });
  const p = like(), s = stateOf(p);
  assert.throws(() => loadCheckpoint(path, p, s), /not an integer from 0 to 10000000/);
  const c = loadCheckpoint(path, p, s, 1e8);
  assert.equal(c.step, 20_000_000);
  tree.dispose([p, s as unknown as Tree, c.params, c.state as unknown as Tree]);
});

test("loadParams refuses NaN/Inf weights, wrong names and shapes, naming the file and the tensor", () => {
  const path = join(dir, "params.safetensors");
  const p = like();
  saveParams(path, p, { kind: "x" });
  const back = loadParams(path, p);
  assert.deepEqual(back.metadata, { kind: "x" });
  tree.dispose(back.params);
  const { tensors } = loadSafetensors(path);
  tensors.get("b")!.data[1] = NaN;
  tensors.get("b")!.data[2] = -Infinity;
  saveSafetensors(join(dir, "nan.safetensors"), tensors);
  assert.throws(() => loadParams(join(dir, "nan.safetensors"), p), (e: Error) =>
    e.message === `"${join(dir, "nan.safetensors")}": tensor "b" holds 2 NaN/Inf values (first at index 1)`);
  tensors.get("b")!.data.fill(0);
  tensors.set("w", { shape: [6], data: new Float32Array(6) });
  saveSafetensors(join(dir, "shape.safetensors"), tensors);
  assert.throws(() => loadParams(join(dir, "shape.safetensors"), p), /"[^"]*shape\.safetensors": parameter tensor "w" has shape \[6\], expected \[2,3\] \(was it written for another model config\?\)/);
  tree.dispose(p);
});
