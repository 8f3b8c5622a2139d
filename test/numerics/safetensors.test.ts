import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeSafetensors, decodeSafetensors, assertFinite, SafetensorsError } from "../../src/numerics/safetensors.ts";

test("safetensors round-trip, header layout of the format", () => {
  const tensors = new Map([["a.w", { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }], ["b", { shape: [1], data: Float32Array.from([-0.5]) }]]);
  const bytes = encodeSafetensors(tensors, { step: "7" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header["a.w"], { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header["b"].data_offsets, [24, 28]);
  const back = decodeSafetensors(bytes);
  assert.equal(back.metadata.step, "7");
  assert.deepEqual(back.tensors.get("a.w")!.data, tensors.get("a.w")!.data);
  assert.deepEqual(back.tensors.get("b")!.shape, [1]);
});

test("truncated or foreign files are errors that say so", () => {
  const bytes = encodeSafetensors(new Map([["x", { shape: [4], data: new Float32Array(4) }]]));
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), "f"), /truncated/);
  assert.throws(() => decodeSafetensors(new Uint8Array(4), "f"), /too short/);
  assert.throws(() => decodeSafetensors(new TextEncoder().encode("\x05\0\0\0\0\0\0\0hello"), "f"), /not valid JSON/);
});

/** A file of one tensor with raw little-endian bytes `raw` of `dtype`. */
function rawFile(dtype: string, shape: number[], raw: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify({ t: { dtype, shape, data_offsets: [0, raw.length] } }));
  const out = new Uint8Array(8 + head.length + raw.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(raw, 8 + head.length);
  return out;
}
const le = (n: number, write: (v: DataView) => void) => {
  const b = new Uint8Array(n);
  write(new DataView(b.buffer));
  return b;
};

test("half, bfloat16, float64, integer and boolean tensors read as float32 (a table saved from PyTorch in fp16, an int64 mask)", () => {
  const read = (dtype: string, raw: Uint8Array, n: number) => [...decodeSafetensors(rawFile(dtype, [n], raw), "t").tensors.get("t")!.data];
  // half: 1, −2, 0.5, 65504 (the largest), 2^−24 (the smallest subnormal), 1/3 rounded to 11 bits
  const halves = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x3555];
  assert.deepEqual(read("F16", le(12, (v) => halves.forEach((h, i) => v.setUint16(2 * i, h, true))), 6), [1, -2, 0.5, 65504, 2 ** -24, 0.333251953125]);
  // bfloat16 is float32's upper half: 1, −3, π to 8 bits (0x4049 → 3.140625)
  assert.deepEqual(read("BF16", le(6, (v) => [0x3f80, 0xc040, 0x4049].forEach((h, i) => v.setUint16(2 * i, h, true))), 3), [1, -3, 3.140625]);
  assert.deepEqual(read("F64", le(16, (v) => { v.setFloat64(0, 0.1, true); v.setFloat64(8, -7, true); }), 2), [Math.fround(0.1), -7]);
  assert.deepEqual(read("I64", le(24, (v) => [1n, 0n, -16777216n].forEach((x, i) => v.setBigInt64(8 * i, x, true))), 3), [1, 0, -16777216]);
  assert.deepEqual(read("I32", le(8, (v) => { v.setInt32(0, -5, true); v.setInt32(4, 300, true); }), 2), [-5, 300]);
  assert.deepEqual(read("BOOL", Uint8Array.from([1, 0, 1]), 3), [1, 0, 1]);
  assert.deepEqual(read("U8", Uint8Array.from([255, 7]), 2), [255, 7]);
  // an integer float32 cannot hold exactly is refused, not rounded
  assert.throws(() => read("I64", le(16, (v) => { v.setBigInt64(0, 1n, true); v.setBigInt64(8, 16777217n, true); }), 2),
    (e: Error) => e instanceof SafetensorsError && /tensor "t" \(I64\) holds 16777217 at index 1, beyond ±2\^24/.test(e.message) && !e.message.includes("\n"));
});

// ---- issue 14: every header claim is checked against the format and the bytes ----

const sample = () => new Map([
  ["a.w", { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
  ["b", { shape: [1], data: Float32Array.from([-0.5]) }],
  ["empty", { shape: [0, 3], data: new Float32Array(0) }],
  ["scalar", { shape: [], data: Float32Array.from([7]) }],
  ["e", { shape: [4], data: Float32Array.from([0.25, -1e30, 3e-40, 9]) }],
]);

/** Bytes of a file whose JSON header is `edit`ed (the length field follows unless `length` is given). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, any>) => unknown, length?: bigint): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const edited = edit(header);
  const head = new TextEncoder().encode(JSON.stringify(edited === undefined ? header : edited));
  const out = new Uint8Array(8 + head.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(head.length), true);
  out.set(head, 8);
  out.set(bytes.subarray(8 + n), 8 + head.length);
  return out;
}

test("bad offsets, shapes, dtypes and headers are one-line errors naming the file and the tensor", () => {
  const good = encodeSafetensors(sample(), { k: "v" });
  const cases: [string, (h: Record<string, any>) => unknown, RegExp][] = [
    ["negative offset", (h) => { h.b.data_offsets = [-4, 0]; }, /tensor "b" has data_offsets \[-4,0\]/],
    ["begin after end", (h) => { h.b.data_offsets = [28, 24]; }, /tensor "b" has data_offsets \[28,24\]/],
    ["fractional offset", (h) => { h.b.data_offsets = [24.5, 28.5]; }, /tensor "b" has data_offsets/],
    ["string offset", (h) => { h.b.data_offsets = ["24", "28"]; }, /tensor "b" has data_offsets/],
    ["three offsets", (h) => { h.b.data_offsets = [24, 28, 32]; }, /tensor "b" has data_offsets/],
    ["out of the file", (h) => { h.e.data_offsets = [1 << 30, (1 << 30) + 16]; }, /tensor "e" has data_offsets .* past the 48 data bytes/],
    ["overlapping", (h) => { h.b.data_offsets = [20, 24]; }, /overlapping|a hole/],
    ["unaligned", (h) => { h["a.w"].data_offsets = [2, 26]; h.b.data_offsets = [26, 30]; }, /tensor "a.w" .*a hole|overlapping/],
    ["shape does not match the bytes", (h) => { h["a.w"].shape = [3, 3]; }, /tensor "a.w" has shape \[3,3\] of F32 \(9 × 4 bytes\) but data_offsets \[0, 24\] hold 24 bytes/],
    ["negative dimension", (h) => { h["a.w"].shape = [-2, -3]; }, /tensor "a.w" has shape \[-2,-3\]; a shape is a list/],
    ["fractional dimension", (h) => { h["a.w"].shape = [1.5, 4]; }, /tensor "a.w" has shape/],
    ["huge shape", (h) => { h["a.w"].shape = [2 ** 40, 2 ** 40, 0.5]; }, /tensor "a.w" has shape/],
    ["unknown dtype", (h) => { h.b.dtype = "F33"; }, /tensor "b" has unknown dtype "F33"/],
    ["an 8-bit float", (h) => { h.b.dtype = "F8_E4M3"; h.b.shape = [4]; }, /tensor "b" has dtype F8_E4M3, which is not read/],
    ["unknown field", (h) => { h.b.extra = 1; }, /tensor "b" has unknown field "extra"/],
    ["entry not an object", (h) => { h.b = [1]; }, /tensor "b" is described by \[1\]/],
    ["header an array", () => [1, 2], /header is \[1,2\], not a JSON object/],
    ["header null", () => null, /header is null/],
    ["metadata not strings", (h) => { h.__metadata__ = { k: 3 }; }, /__metadata__ "k" is 3, not a string/],
    ["missing tensor leaves trailing bytes", (h) => { delete h.e; }, /the tensors end at data byte 32 but the file has 48 data bytes/],
  ];
  for (const [what, edit, message] of cases) {
    const bytes = withHeader(good, edit);
    assert.throws(() => decodeSafetensors(bytes, "m/x.safetensors"), (e: Error) => {
      assert.ok(e instanceof SafetensorsError, `${what}: ${e}`);
      assert.match(e.message, /^"m\/x\.safetensors": /, what);
      assert.match(e.message, message, what);
      assert.ok(!e.message.includes("\n"), what);
      return true;
    }, what);
  }
  assert.throws(() => decodeSafetensors(withHeader(good, () => undefined, 2n ** 63n), "f"), /header length 9223372036854775808 exceeds the file/);
  const badUtf8 = withHeader(good, () => undefined);
  badUtf8[9] = 0xff;
  assert.throws(() => decodeSafetensors(badUtf8, "f"), /not valid JSON in UTF-8/);
  // honest rearrangements load: offsets swapped between two same-sized tensors swap their values
  const swapped = decodeSafetensors(withHeader(good, (h) => { [h.b.data_offsets, h.scalar.data_offsets] = [h.scalar.data_offsets, h.b.data_offsets]; }));
  assert.deepEqual([...swapped.tensors.get("b")!.data], [7]);
  assert.deepEqual([...swapped.tensors.get("scalar")!.data], [-0.5]);
  assert.deepEqual(swapped.tensors.get("empty")!.shape, [0, 3]);
});

test("assertFinite names the file, the tensor and the count of NaN/Inf values", () => {
  const t = sample();
  assert.doesNotThrow(() => assertFinite(t, "x"));
  t.get("e")!.data[1] = NaN;
  t.get("e")!.data[3] = -Infinity;
  t.get("b")!.data[0] = Infinity;
  const back = decodeSafetensors(encodeSafetensors(t)).tensors; // the format carries them; the loaders refuse them
  assert.throws(() => assertFinite(back, "models/x.safetensors"), (e: Error) =>
    e instanceof SafetensorsError && e.message === '"models/x.safetensors": tensor "b" holds 1 NaN/Inf value (first at index 0)');
  back.delete("b");
  assert.throws(() => assertFinite(back, "m"), /^Error: "m": tensor "e" holds 2 NaN\/Inf values \(first at index 1\)$|tensor "e" holds 2 NaN\/Inf values/);
});

/** A seeded generator (mulberry32), so every fuzz case is reproducible from its index. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes per element of the dtypes the decoder reads. */
const READ_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1 };

/** If the decoder accepted `bytes`, checks that what it returned is exactly what the header honestly describes. */
function assertHonest(bytes: Uint8Array, got: ReturnType<typeof decodeSafetensors>, label: string): void {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const base = 8 + n;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  assert.deepEqual([...got.tensors.keys()].sort(), names.sort(), label);
  assert.deepEqual(got.metadata, header.__metadata__ ?? {}, label);
  const ranges: [number, number][] = [];
  for (const name of names) {
    const { dtype, shape, data_offsets: [begin, end] } = header[name];
    assert.ok(dtype in READ_BYTES, `${label}: ${dtype}`);
    assert.ok(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && begin >= 0 && begin <= end, label);
    const elements = shape.reduce((a: number, b: number) => a * b, 1);
    assert.equal(elements * READ_BYTES[dtype], end - begin, label);
    const t = got.tensors.get(name)!;
    assert.deepEqual(t.shape, shape, label);
    assert.equal(t.data.length, elements, label);
    if (dtype === "F32") assert.deepEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), bytes.subarray(base + begin, base + end), `${label}: ${name}`);
    ranges.push([begin, end]);
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b, e] of ranges) {
    assert.equal(b, at, `${label}: tiling`);
    at = e;
  }
  assert.equal(at, bytes.length - base, `${label}: covers the data`);
}

test("fuzz: 600 seeded mutations of a valid file either load honestly or fail with a one-line SafetensorsError", () => {
  const good = encodeSafetensors(sample(), { step: "7", config: '{"a":1}' });
  const names = [...sample().keys()];
  const pick = <T>(r: () => number, xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const weird = [-1, -4, 0, 1, 3, 4, 8, 1.5, 1e20, 2 ** 53, -0, "8", null, true, [], {}, 1e308];
  const outcomes = { loaded: 0, refused: 0 };
  const started = Date.now();
  for (let i = 0; i < 600; i++) {
    const r = rng(1000 + i);
    let bytes: Uint8Array;
    const kind = i % 6;
    if (kind === 0) { // byte flips anywhere
      bytes = good.slice();
      for (let k = 1 + Math.floor(r() * 4); k > 0; k--) bytes[Math.floor(r() * bytes.length)] ^= 1 + Math.floor(r() * 255);
    } else if (kind === 1) { // truncation or extension
      bytes = r() < 0.7 ? good.slice(0, Math.floor(r() * good.length)) : Uint8Array.from([...good, ...Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() * 256))]);
    } else if (kind === 2) { // the length field
      bytes = good.slice();
      new DataView(bytes.buffer).setBigUint64(0, r() < 0.5 ? BigInt(Math.floor(r() * (good.length + 16))) : BigInt(Math.floor(r() * 2 ** 52)) * BigInt(1 + Math.floor(r() * 4096)), true);
    } else { // header edits: offsets, shapes, dtypes, fields, names
      bytes = withHeader(good, (h) => {
        for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
          const name = pick(r, names.filter((n) => n in h));
          if (!name) break;
          const t = h[name];
          const op = Math.floor(r() * 12);
          if (typeof t !== "object" || t === null || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) { h[name] = { dtype: "F32", shape: [1], data_offsets: [0, 4] }; continue; }
          if (op === 0) t.data_offsets[Math.floor(r() * 2)] = pick(r, weird);
          else if (op === 1) t.data_offsets[Math.floor(r() * 2)] += pick(r, [-8, -4, -2, -1, 1, 2, 4, 8]);
          else if (op === 2) { const other = h[pick(r, names.filter((n) => n in h))]; if (!Array.isArray(other?.data_offsets)) continue; [t.data_offsets, other.data_offsets] = [other.data_offsets, t.data_offsets]; }
          else if (op === 3) t.shape = r() < 0.5 ? [...t.shape, pick(r, [0, 1, 2, -1, 1.5])] : t.shape.slice(1);
          else if (op === 4) t.shape[Math.floor(r() * Math.max(1, t.shape.length))] = pick(r, weird);
          else if (op === 5) t.shape = t.shape.slice().reverse();
          else if (op === 6) t.dtype = pick(r, ["F16", "F64", "BF16", "I32", "U8", "XX", "f32", 3, null]);
          else if (op === 7) delete t[pick(r, ["dtype", "shape", "data_offsets"])];
          else if (op === 8) t[pick(r, ["extra", "__proto__", "dtype "])] = 1;
          else if (op === 9) h[name] = pick(r, weird);
          else if (op === 10) { h[pick(r, ["__proto__", "constructor", "", "x\ny"])] = t; delete h[name]; }
          else h.__metadata__ = pick(r, [{ step: 7 }, null, [], "x", { a: "b" }, {}]);
        }
      }, i % 12 === 3 ? BigInt(Math.floor(r() * 400)) : undefined);
    }
    const label = `case ${i} (kind ${kind})`;
    let got: ReturnType<typeof decodeSafetensors> | undefined;
    try {
      got = decodeSafetensors(bytes, "fuzz.safetensors");
    } catch (e) {
      assert.ok(e instanceof SafetensorsError, `${label}: ${(e as Error)?.stack}`);
      assert.match(e.message, /^"fuzz\.safetensors": \S/, label);
      assert.ok(!/[\r\n]/.test(e.message) && e.message.length < 400, `${label}: ${e.message}`);
      outcomes.refused++;
      continue;
    }
    assertHonest(bytes, got, label);
    outcomes.loaded++;
  }
  assert.ok(outcomes.loaded > 30 && outcomes.refused > 300, JSON.stringify(outcomes));
  assert.ok(Date.now() - started < 20_000, "fast");
});
