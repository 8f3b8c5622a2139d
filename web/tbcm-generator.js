// @ts-check
/**
 * Text → image with a student exported by `tbcm export`, in a browser (onnxruntime-web) or in
 * Node (onnxruntime-node or -web): `loadGenerator` for the default stack's export, `loadBundleGenerator`
 * for the student of your own teacher bundle. Plain JavaScript, so a page can load it as is:
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

/**
 * The unit noises `tbcm sample` draws for n samples of size d at `seed`: the start from foldIn(k, 0),
 * the re-noising before step i + 1 (i ≥ 1) from foldIn(foldIn(k, 1), i). One list per step.
 */
function sampleNoises(/** @type {number} */ seed, /** @type {number} */ steps, /** @type {number} */ size) {
  const k = key(seed);
  const noises = [normal(foldIn(k, 0), size)];
  for (let i = 1; i < steps; i++) noises.push(normal(foldIn(foldIn(k, 1), i), size));
  return noises;
}

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
    const noises = sampleNoises(seed, steps, n * d);
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

/**
 * Element readers of the safetensors dtypes read besides F32 (bytes, value as a number; tbcm's own reader checks more).
 * @type {Record<string, [number, (v: DataView, i: number) => number]>}
 */
const SAFETENSORS_READ = {
  F16: [2, (v, i) => halfToFloat(v.getUint16(2 * i, true))],
  BF16: [2, (v, i) => new Float32Array(new Uint32Array([v.getUint16(2 * i, true) << 16]).buffer)[0]],
  F64: [8, (v, i) => v.getFloat64(8 * i, true)],
  I64: [8, (v, i) => Number(v.getBigInt64(8 * i, true))],
  I32: [4, (v, i) => v.getInt32(4 * i, true)],
  U8: [1, (v, i) => v.getUint8(i)],
  BOOL: [1, (v, i) => (v.getUint8(i) ? 1 : 0)],
};

/** A number as the nearest float16's bits (round to nearest even; overflow to ±∞, subnormals kept). */
function floatToHalf(/** @type {number} */ x) {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, exp = (u >>> 23) & 0xff, man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0); // ∞, NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: ∞
  if (e <= 0) {
    if (e < -10) return sign; // below the smallest subnormal: ±0
    const m = (man | 0x800000) >>> (1 - e), half = m >>> 13, rest = m & 0x1fff;
    return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (man >>> 13), rest = man & 0x1fff;
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0)); // a carry into the exponent is right
}

function halfToFloat(/** @type {number} */ h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * The tensors of a safetensors file and its metadata: `{ tensors: { name: { data, shape } },
 * metadata }`, data as Float32Array (F16, BF16, F64, I64, I32, U8 and BOOL converted). Enough for a
 * bundle export's prompt-embeddings table.
 */
export function readSafetensors(/** @type {Uint8Array} */ bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (!(n > 1 && 8 + n <= bytes.length)) throw new Error("not a safetensors file (bad header length)");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  /** @type {Record<string, { data: Float32Array, shape: number[] }>} */
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [lo, hi] = t.data_offsets;
    const raw = Uint8Array.prototype.slice.call(bytes, 8 + n + lo, 8 + n + hi); // a copy, so aligned for Float32Array (a Node Buffer's own slice is a view)
    if (t.dtype === "F32") {
      tensors[name] = { data: new Float32Array(raw.buffer, raw.byteOffset, (hi - lo) / 4), shape: t.shape };
      continue;
    }
    const reader = SAFETENSORS_READ[t.dtype];
    if (!reader) throw new Error(`tensor "${name}" is ${t.dtype}; F32, F16, BF16, F64, I64, I32, U8 and BOOL are read`);
    const [size, read] = reader, v = new DataView(raw.buffer), data = new Float32Array((hi - lo) / size);
    for (let i = 0; i < data.length; i++) data[i] = read(v, i);
    tensors[name] = { data, shape: t.shape };
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

/**
 * Loads a teacher-bundle student exported by `tbcm export` (format "tbcm-bundle-student-1": the
 * student in the teacher's own contract, the bundle's prompt-embeddings table and its decoder).
 * `generate(prompts, { seed, steps, guidance })` takes prompts of the table ("" for each image of an
 * unconditional student) and draws what `tbcm
 * sample --run` draws for them (the same noises and re-noising; images to float tolerance; `guidance`
 * only for a student that takes the scale as an input, a guidance-distilled teacher's), returning
 * pixels in [0, 1], `channels·height·width` per image (channels 3: RGB; other decoders: grey).
 */
export async function loadBundleGenerator(/** @type {any} */ ort, /** @type {(name: string) => Promise<Uint8Array>} */ read, sessionOptions = {}) {
  const manifest = JSON.parse(new TextDecoder().decode(await read("manifest.json")));
  if (manifest.format !== "tbcm-bundle-student-1") throw new Error(`not a tbcm teacher-bundle student export (format "${manifest.format}")`);
  if (!manifest.vae_decoder) throw new Error("this export has no decoder (its bundle had none): run transformer.onnx for latents");
  // an unconditional student's export may have no table: its one "prompt" is the empty one
  const { tensors, metadata } = manifest.prompt_embeddings ? readSafetensors(await read(manifest.prompt_embeddings)) : { tensors: {}, metadata: { prompts: "[\"\"]" } };
  /** @type {string[]} */
  const prompts = JSON.parse(metadata.prompts ?? "[]");
  /** @type {Map<string, number>} */
  const index = new Map();
  prompts.forEach((p, i) => { if (!index.has(p)) index.set(p, i); }); // the first row of a repeated prompt, as tbcm
  const transformer = await ort.InferenceSession.create(await read(manifest.models.transformer), sessionOptions);
  const dec = manifest.vae_decoder;
  const decoder = await ort.InferenceSession.create(await read(dec.file), sessionOptions);
  const { roles, latent_shape: latentShape, time_scale: timeScale, eta } = manifest;
  // a teacher with noise at time 0 takes time_scale·(1 − s) and answers −v (tbcm's flow velocity v at flow time s)
  const noiseAtZero = manifest.noise_at === 0, predictsX0 = manifest.prediction === "x0";
  /** @type {Record<string, string>} the inputs' element types other than float32 (a float16 teacher's, an int64 mask's) */
  const types = manifest.input_types ?? {};
  /** An output's values as floats (a float16 file answers float16). */
  const floats = (/** @type {any} */ t) => (t.type === "float16" ? Float32Array.from(/** @type {Uint16Array} */ (t.data), halfToFloat) : /** @type {Float32Array} */ (t.data));
  const d = latentShape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1);
  const timeShape = (/** @type {number} */ n) => (manifest.inputs[roles.time].shape.length === 1 ? [n] : [n, 1]);
  const tensor = (/** @type {Float32Array} */ data, /** @type {number[]} */ shape) => new ort.Tensor("float32", data, shape);

  /** A tensor of `type` (float32 when unset; float16, int64, int32, bool as a teacher may declare an input). */
  const typed = (/** @type {Float32Array} */ data, /** @type {number[]} */ shape, /** @type {string | undefined} */ type) => type === "float16"
    ? new ort.Tensor("float16", Uint16Array.from(data, floatToHalf), shape)
    : type === "int64"
    ? new ort.Tensor("int64", BigInt64Array.from(data, (v) => BigInt(Math.round(v))), shape)
    : type === "int32" ? new ort.Tensor("int32", Int32Array.from(data), shape)
    : type === "bool" ? new ort.Tensor("bool", Uint8Array.from(data, (v) => (v ? 1 : 0)), shape)
    : tensor(data, shape);

  /** Each condition input's rows for `rows` (table row indices), and the constant inputs (repeated over the batch where they have one). */
  function conditions(/** @type {number[]} */ rows) {
    /** @type {Record<string, unknown>} */
    const feeds = {};
    for (const [name, spec] of Object.entries(manifest.constant_inputs ?? {})) {
      const t = tensors[name], batched = spec.shape[0] === "batch";
      const data = batched ? new Float32Array(rows.length * t.data.length) : t.data;
      if (batched) rows.forEach((_, r) => data.set(t.data, r * t.data.length));
      feeds[name] = typed(data, batched ? [rows.length, ...t.shape] : t.shape, spec.type);
    }
    for (const name of roles.condition) {
      const t = tensors[manifest.condition_tensors[name]];
      const size = t.data.length / t.shape[0], out = new Float32Array(rows.length * size);
      rows.forEach((j, r) => out.set(t.data.subarray(j * size, (j + 1) * size), r * size));
      // an integer or boolean input (an attention mask) in its own type
      feeds[name] = typed(out, [rows.length, ...t.shape.slice(1)], types[name]);
    }
    return feeds;
  }

  async function generate(/** @type {readonly string[]} */ promptList, { seed = 0, steps = 1, guidance = manifest.guidance_scale } = {}) {
    const n = promptList.length;
    if (n === 0) throw new Error("no prompts given");
    // the scale is the caller's only where the student takes it as an input (a guidance-distilled teacher's); else it is baked in
    if (!roles.guidance && guidance !== manifest.guidance_scale) throw new Error(`this export's guidance is baked in at ${manifest.guidance_scale}; its teacher takes no guidance input`);
    if (!(Number.isFinite(guidance) && guidance >= 0)) throw new Error(`guidance must be a number ≥ 0, got ${guidance}`);
    const rows = promptList.map((p) => {
      const j = index.get(p);
      if (j === undefined) throw new Error(`prompt ${JSON.stringify(p)} is not in the export's embeddings table`);
      return j;
    });
    const times = manifest.flow_times[steps];
    if (!times) throw new Error(`this export lists flow times for ${Object.keys(manifest.flow_times).join(", ")} steps, not ${steps}`);
    const cond = conditions(rows);
    const noises = sampleNoises(seed, times.length - 1, n * d);
    let x = noises[0], x0 = x;
    for (let i = 0; i + 1 < times.length; i++) {
      const s = times[i], next = times[i + 1];
      const outs = await transformer.run({
        [roles.latent]: typed(x, [n, ...latentShape], types[roles.latent]),
        [roles.time]: typed(new Float32Array(n).fill(timeScale * (noiseAtZero ? 1 - s : s)), timeShape(n), types[roles.time]), ...cond,
        // a guidance-distilled teacher's student takes the scale as the teacher does
        ...(roles.guidance ? { [roles.guidance]: typed(new Float32Array(n).fill(manifest.guidance_input_scale * guidance), manifest.inputs[roles.guidance].shape.length === 1 ? [n] : [n, 1], types[roles.guidance]) } : {}),
      });
      const vel = floats(outs[transformer.outputNames[0]]);
      x0 = predictsX0 ? Float32Array.from(vel) : x.map((xi, j) => xi - s * (noiseAtZero ? -vel[j] : vel[j]));
      if (next === 0) break;
      const z = noises[i + 1];
      const keep = Math.sqrt(Math.max(0, 1 - eta * eta));
      x = x0.map((a, j) => {
        const implied = (x[j] - (1 - s) * a) / s;
        return (1 - next) * a + next * (eta * z[j] + keep * implied);
      });
    }
    const latent = x0.map((a) => a / dec.latent_scaling_factor + dec.latent_shift_factor);
    const out = (await decoder.run({ [dec.input]: typed(latent, [n, ...latentShape], dec.input_type === "float16" ? "float16" : undefined) }))[dec.output];
    const [, C, height, width] = out.dims, [lo, hi] = dec.output_range, plane = height * width;
    const raw = floats(out), channels = C === 3 ? 3 : 1;
    const images = new Float32Array(n * channels * plane);
    for (let i = 0; i < n; i++) for (let p = 0; p < plane; p++) {
      if (channels === 3) for (let c = 0; c < 3; c++) images[(i * 3 + c) * plane + p] = Math.min(1, Math.max(0, (raw[(i * 3 + c) * plane + p] - lo) / (hi - lo)));
      else {
        let m = 0;
        for (let c = 0; c < C; c++) m += raw[(i * C + c) * plane + p];
        images[i * plane + p] = Math.min(1, Math.max(0, (m / C - lo) / (hi - lo)));
      }
    }
    return { images, width, height, channels };
  }

  async function release() {
    for (const s of [transformer, decoder]) await s.release();
  }

  return { manifest, prompts, generate, release };
}

/** Image `i` of `images` as RGBA bytes for a canvas `ImageData` (`channels` 3: RGB planes, 1: grey). */
export function toRgba(/** @type {Float32Array} */ images, /** @type {number} */ i, /** @type {number} */ width, /** @type {number} */ height, channels = 1) {
  const n = width * height, out = new Uint8ClampedArray(4 * n);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) out[4 * p + c] = Math.round(255 * images[(i * channels + (channels === 3 ? c : 0)) * n + p]);
    out[4 * p + 3] = 255;
  }
  return out;
}
