/** Loading the stack's weights refuses NaN/Inf values and damaged metadata (issue 14). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { tree } from "@jax-js/jax";
import { loadVae, loadTeacher } from "../../src/stack/load.ts";
import { loadSafetensors, saveSafetensors } from "../../src/numerics/safetensors.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-load-");

test("the shipped VAE and teacher load; a NaN weight or damaged metadata in a copy is a one-line error naming file and tensor", () => {
  const vae = loadVae("models/fmnist/vae.safetensors");
  assert.ok(vae.scale > 0 && vae.blackLatent.length > 0);
  tree.dispose(vae.params);
  const teacher = loadTeacher("models/fmnist/teacher.safetensors");
  tree.dispose(teacher.params);

  const { tensors, metadata } = loadSafetensors("models/fmnist/vae.safetensors");
  const [name, t] = [...tensors][3];
  const saved = t.data[5];
  t.data[5] = NaN;
  const poisoned = join(dir, "vae-nan.safetensors");
  saveSafetensors(poisoned, tensors, metadata);
  assert.throws(() => loadVae(poisoned), (e: Error) => e.message === `"${poisoned}": tensor "${name}" holds 1 NaN/Inf value (first at index 5)`);
  t.data[5] = saved;
  for (const [key, value, message] of [["scale", "abc", /metadata "scale" is "abc", not a positive number/], ["config", "{", /metadata "config" is not a JSON object/],
    ["black_latent", "[1, null]", /metadata "black_latent" is not a JSON list of finite numbers/],
    // sizes are bounded before a network is built from them (a width of 12,000 would allocate GBs)
    ["config", JSON.stringify({ ...JSON.parse(metadata.config), width: 12000 }), /metadata "config" has width = 12000; expected a whole number from 1 to 4096/],
    ["config", JSON.stringify({ ...JSON.parse(metadata.config), encoderDepth: 2.5 }), /metadata "config" has encoderDepth = 2\.5; expected a whole number from 1 to 64/]] as const) {
    const path = join(dir, `vae-${key}.safetensors`);
    saveSafetensors(path, tensors, { ...metadata, [key]: value });
    assert.throws(() => loadVae(path), (e: Error) => message.test(e.message) && e.message.startsWith(`"${path}": `) && !e.message.includes("\n"), key);
  }
});
