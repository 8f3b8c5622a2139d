import { test } from "node:test";
import assert from "node:assert/strict";
import "../../src/numerics/threads.ts";
import { numpy as np, tree } from "@jax-js/jax";
import { key } from "../../src/numerics/random.ts";
import { parameterCount } from "../../src/numerics/tree.ts";
import { initAttention, attention, contextMask } from "../../src/models/transformer.ts";
import { initVae, vaeEncode, vaeDecode, patchify, unpatchify, latentDim } from "../../src/models/vae.ts";
import { initDit, ditFlow, withStudentHeads } from "../../src/models/dit.ts";
import { initTextEncoder, encodeText, tokenRows } from "../../src/models/textEncoder.ts";
import { buildTokenizer, decode, encode } from "../../src/data/tokenizer.ts";

const host = (a: import("@jax-js/jax").Array) => Array.from(a.dataSync() as Float32Array);

test("attention: masked context tokens change nothing (softmax and linear attention)", () => {
  const p = initAttention(key(1), 8, 6, 2);
  const x = np.array(Float32Array.from({ length: 1 * 3 * 8 }, (_, i) => Math.sin(i))).reshape([1, 3, 8]);
  const ctx = Float32Array.from({ length: 1 * 4 * 6 }, (_, i) => Math.cos(0.3 * i));
  const mask = np.array(Float32Array.of(1, 1, 1, 0)).reshape([1, 4]);
  for (const kind of ["softmax", "linear"] as const) {
    const full = host(attention(tree.ref(p), x.ref, np.array(ctx).reshape([1, 4, 6]), 2, kind, contextMask(mask.ref)));
    const changed = ctx.slice(); for (let j = 18; j < 24; j++) changed[j] = 100; // the masked token
    const other = host(attention(tree.ref(p), x.ref, np.array(changed).reshape([1, 4, 6]), 2, kind, contextMask(mask.ref)));
    full.forEach((v, i) => assert.ok(Math.abs(v - other[i]) < 1e-5, `${kind}: masked token leaked`));
  }
  mask.dispose(); x.dispose(); tree.dispose(p);
});

test("model shapes and parameter counts (VAE, text encoder, DiT with and without student heads)", () => {
  const vc = { imageSize: 28, patch: 4, latentChannels: 4, width: 32, heads: 4, encoderDepth: 1, decoderDepth: 1 };
  const vae = initVae(key(2), vc);
  // coder: in-proj + blocks (4 attention linears + 2 qk gains; GLU 3 linears; 2 norms) + norm + out-proj
  const block = (w: number, ff: number) => 4 * (w * w + w) + 2 * (w / 4) + 2 * (w * ff + ff) + (ff * w + w) + 2 * w;
  const coder = (i: number, o: number) => (i * 32 + 32) + block(32, 64) + 32 + (32 * o + o);
  assert.equal(parameterCount(vae), coder(16, 8) + coder(4, 16));
  const img = np.array(Float32Array.from({ length: 2 * 784 }, (_, i) => (i % 29) / 29)).reshape([2, 784]);
  assert.deepEqual(host(unpatchify(patchify(img.ref, vc), vc)), host(img.ref));
  const [mean, logvar] = vaeEncode(tree.ref(vae), vc, img);
  assert.deepEqual(mean.shape, [2, latentDim(vc)]);
  assert.equal(latentDim(vc), 196);
  logvar.dispose();
  assert.deepEqual(vaeDecode(vae, vc, mean).shape, [2, 784]);

  const tok = buildTokenizer(["a photo of a sneaker", "a bag"]);
  assert.equal(decode(tok, encode(tok, "a photo of a bag", 8)), "a photo of a bag");
  const tc = { vocab: tok.vocab.length, maxWords: 8, width: 16, heads: 2, depth: 1 };
  const rows = tokenRows(tok, ["a bag", ""], tc);
  assert.deepEqual(Array.from(rows.mask), [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const text = initTextEncoder(key(3), tc);
  const cond = encodeText(text, tc, np.array(rows.oneHot).reshape([2, 8, tc.vocab]), np.array(rows.mask).reshape([2, 9]));
  assert.deepEqual(cond.shape, [2, 9, 17]);

  const dc = { side: 7, channels: 4, width: 32, depth: 2, heads: 4, textWidth: 16, attention: "linear" as const, ffRatio: 2 };
  const dit = initDit(key(4), dc);
  const nTeacher = parameterCount(dit);
  const student = withStudentHeads(key(5), tree.ref(dit), dc);
  // guidance embedder (64 → 32 → 32) and logvar head (32 → 1)
  assert.equal(parameterCount(student) - nTeacher, (64 * 32 + 32) + (32 * 32 + 32) + (32 + 1));
  const x = np.array(Float32Array.from({ length: 2 * 196 }, (_, i) => Math.sin(i))).reshape([2, 196]);
  const [v, lv] = ditFlow(dit, dc, x, np.array(Float32Array.of(0.3, 0.7)).reshape([2, 1]), cond);
  // the untrained DiT's output layer is zero-initialised
  assert.deepEqual(v.shape, [2, 196]);
  assert.ok(host(v).every((a) => a === 0));
  lv.dispose();
  tree.dispose(student);
});
