// @ts-check
/**
 * Text → image with a student exported by `tbcm export`, in a browser (onnxruntime-web) or in
 * Node (onnxruntime-node or -web). Plain JavaScript, so a page can load it as is:
 *
 *   import * as ort from "./ort/ort.min.mjs";
 *   import { loadGenerator, fromUrl, toRgba } from "./tbcm-generator.js";
 *   const g = await loadGenerator(ort, fromUrl("./model/"));
 *   const { images } = await g.generate(["a photo of a sneaker"], { seed: 0 });
 *   ctx.putImageData(new ImageData(toRgba(images, 0, g.width, g.height), g.width, g.height), 0, 0);
 *
 * For the same prompts, seed, guidance and steps it draws the noises `tbcm sample` draws (random.js
 * is the library's generator too), so the images are the CLI's to float tolerance. A page needs
 * both files: tbcm-generator.js and random.js.
 */

import { key, foldIn, normal } from "./random.js";

export { key, foldIn, normal };

/** Reads the export's files from a base URL (browser, or Node 20's fetch). */
export function fromUrl(/** @type {string | URL} */ base) {
  return async (/** @type {string} */ name) => {
    const url = new URL(name, base instanceof URL ? base : new URL(base, globalThis.location?.href));
    const r = await fetch(url);
    if (!r.ok) throw new Error(`cannot fetch ${url}: HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  };
}

/**
 * Loads the three ONNX files of an export. `ort` is onnxruntime-web's or -node's module, `read`
 * returns a file's bytes by name (`fromUrl(base)`, or `(n) => fs.readFile(dir + "/" + n)`).
 */
export async function loadGenerator(/** @type {any} */ ort, /** @type {(name: string) => Promise<Uint8Array>} */ read, sessionOptions = {}) {
  const manifest = JSON.parse(new TextDecoder().decode(await read("manifest.json")));
  if (manifest.format !== "tbcm-onnx-text-to-image-1") throw new Error(`not a tbcm text-to-image export (format "${manifest.format}")`);
  const session = async (/** @type {string} */ name) => ort.InferenceSession.create(await read(manifest.models[name]), sessionOptions);
  const text = await session("text_encoder"), generator = await session("generator"), decoder = await session("vae_decoder");
  const batch = manifest.inputs.noise.shape[0], d = manifest.inputs.noise.shape[1], L = manifest.tokenizer.max_words;
  const steps = manifest.steps ?? 1;
  const vocab = new Map(manifest.tokenizer.vocab.map((/** @type {string} */ w, /** @type {number} */ i) => [w, i]));
  const side = Math.round(Math.sqrt(manifest.outputs.image.shape[1]));
  const tensor = (/** @type {Float32Array} */ data, /** @type {number[]} */ shape) => new ort.Tensor("float32", data, shape);

  /** Word ids of a prompt (manifest.tokenizer.rule); unknown words → 1 and are reported. */
  function tokenize(/** @type {string} */ prompt, /** @type {Set<string>} */ unknown) {
    const words = prompt.toLowerCase().split(/[^a-z0-9-]+/).filter(Boolean);
    if (words.length > L) throw new Error(`"${prompt}" has ${words.length} words; the text encoder takes at most ${L}`);
    const ids = new Float32Array(L);
    words.forEach((w, i) => {
      const id = vocab.get(w);
      if (id === undefined) unknown.add(w);
      ids[i] = id ?? 1;
    });
    return ids;
  }

  /**
   * Images for `prompts` (any number; the files' fixed batch is filled with padding rows).
   * Returns grey pixels in [0, 1], `width·height` per image, in prompt order.
   */
  async function generate(/** @type {readonly string[]} */ prompts, { seed = 0, guidance = manifest.default_guidance ?? 4.5 } = {}) {
    const n = prompts.length;
    if (n === 0) throw new Error("no prompts given");
    const unknown = new Set();
    const ids = prompts.map((p) => tokenize(p, unknown));
    // the draws of `tbcm sample`: the first noise from foldIn(k, 0), later ones from foldIn(foldIn(k, 1), i)
    const k = key(seed);
    const noises = [normal(foldIn(k, 0), n * d)];
    for (let i = 1; i < steps; i++) noises.push(normal(foldIn(foldIn(k, 1), i), n * d));
    const images = new Float32Array(n * side * side);
    for (let start = 0; start < n; start += batch) {
      const rows = Math.min(batch, n - start);
      const tokenIds = new Float32Array(batch * L);
      ids.slice(start, start + rows).forEach((row, r) => tokenIds.set(row, r * L));
      const chunk = (/** @type {Float32Array} */ x) => {
        const out = new Float32Array(batch * d);
        out.set(x.subarray(start * d, (start + rows) * d));
        return tensor(out, [batch, d]);
      };
      const { cond } = await text.run({ token_ids: tensor(tokenIds, [batch, L]) });
      /** @type {Record<string, unknown>} */
      const feeds = { noise: chunk(noises[0]), cond, guidance: tensor(new Float32Array(batch).fill(guidance), [batch, 1]) };
      for (let i = 1; i < steps; i++) feeds[`noise_step${i + 1}`] = chunk(noises[i]);
      const { latent } = await generator.run(feeds);
      const { image } = await decoder.run({ latent });
      images.set(/** @type {Float32Array} */ (image.data).subarray(0, rows * side * side), start * side * side);
    }
    return { images, width: side, height: side, unknownWords: [...unknown] };
  }

  async function release() {
    for (const s of [text, generator, decoder]) await s.release();
  }

  return { manifest, steps, width: side, height: side, batch, generate, release };
}

/** Image `i` of `images` as RGBA bytes for a canvas `ImageData`. */
export function toRgba(/** @type {Float32Array} */ images, /** @type {number} */ i, /** @type {number} */ width, /** @type {number} */ height) {
  const n = width * height, out = new Uint8ClampedArray(4 * n);
  for (let p = 0; p < n; p++) {
    const v = Math.round(255 * images[i * n + p]);
    out[4 * p] = out[4 * p + 1] = out[4 * p + 2] = v;
    out[4 * p + 3] = 255;
  }
  return out;
}
