/**
 * safetensors I/O (the format of Hugging Face's `safetensors`, readable from Python):
 * 8-byte little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}`
 * with an optional `__metadata__` of strings, then the raw little-endian tensor bytes.
 * Only float32 is written. Read: float32, and float16, bfloat16, float64, integer and boolean
 * tensors converted to float32 (a table of prompt embeddings saved in half precision, an attention
 * mask saved as int64); an integer beyond ±2^24, which float32 does not hold exactly, is refused.
 */
import { readFileSync, writeFileSync, renameSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { shippedPath } from "../paths.ts";
import { halfToFloat, bfloatToFloat } from "./float16.ts";

export type HostTensor = { shape: number[]; data: Float32Array };

/** Encodes tensors (and string metadata) into safetensors bytes. */
export function encodeSafetensors(tensors: Map<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`tensor "${name}": shape [${t.shape}] needs ${size} values, has ${t.data.length}`);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + 4 * size] };
    offset += 4 * size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // the format pads the header to 8 bytes
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * A file that is not a well-formed safetensors file, or holds values we refuse (NaN/Inf weights):
 * a one-line message that starts with the quoted file name (or "safetensors data").
 */
export class SafetensorsError extends Error {
  constructor(source: string, what: string) {
    super(`"${source}": ${what}`.replace(/[\r\n]+/g, " "));
    this.name = "SafetensorsError";
  }
}

/** Bytes per element of every dtype the format defines (all but the 8-bit floats are read). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};
/** The dtypes read, each element as a float32 value (F32 itself is copied whole). */
const READ: Record<string, (v: DataView, i: number) => number> = {
  F16: (v, i) => halfToFloat(v.getUint16(2 * i, true)),
  BF16: (v, i) => bfloatToFloat(v.getUint16(2 * i, true)),
  F64: (v, i) => v.getFloat64(8 * i, true),
  I64: (v, i) => Number(v.getBigInt64(8 * i, true)),
  U64: (v, i) => Number(v.getBigUint64(8 * i, true)),
  I32: (v, i) => v.getInt32(4 * i, true),
  U32: (v, i) => v.getUint32(4 * i, true),
  I16: (v, i) => v.getInt16(2 * i, true),
  U16: (v, i) => v.getUint16(2 * i, true),
  I8: (v, i) => v.getInt8(i),
  U8: (v, i) => v.getUint8(i),
  BOOL: (v, i) => (v.getUint8(i) === 0 ? 0 : 1),
};
const INTEGER = new Set(["I64", "U64", "I32", "U32"]);
/** float32 holds every integer of at most this magnitude exactly. */
const EXACT_INTEGER = 2 ** 24;

/** The reference implementation's bound on the JSON header (Hugging Face `safetensors`, MAX_HEADER_SIZE). */
const MAX_HEADER_BYTES = 100_000_000;
/** More dimensions than any model here uses by far; bounds the work a hostile header can ask for. */
const MAX_RANK = 16;
const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
/** A short, one-line rendering of a header value for error messages. */
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/**
 * Decodes safetensors bytes. Everything the header says is checked against the format and the
 * bytes before a value is read: header length within the file and ≤ 100 MB, the header UTF-8 JSON
 * and an object, `__metadata__` an object of strings, every tensor entry exactly
 * `{dtype, shape, data_offsets}` with a known dtype (all but the 8-bit floats are read, as float32), shape entries
 * non-negative integers, offsets non-negative integers with begin ≤ end and
 * end − begin = elements × bytes of the dtype, and the tensors' byte ranges tiling the data
 * section from 0 to the end of the file with no overlap, hole or trailing byte (the format's own
 * rule). Any violation is a
 * `SafetensorsError` naming the source and, where there is one, the tensor.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new SafetensorsError(source, what);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes: too short to be a safetensors file`);
  const declared = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(bytes.length - 8)) fail(`header length ${declared} exceeds the file's ${bytes.length - 8} bytes after the length field (truncated, or not a safetensors file?)`);
  const headerLength = Number(declared);
  if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    return fail("header is not valid JSON in UTF-8 (not a safetensors file?)");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) return fail(`header is ${show(header)}, not a JSON object`);
  const base = 8 + headerLength;
  const dataLength = bytes.length - base;

  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof info !== "object" || info === null || Array.isArray(info)) fail(`__metadata__ is ${show(info)}, not an object of strings`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) if (typeof v !== "string") fail(`__metadata__ "${k}" is ${show(v)}, not a string`);
      metadata = { ...(info as Record<string, string>) };
      continue;
    }
    const tensor = (what: string) => fail(`tensor ${show(name)} ${what}`);
    if (typeof info !== "object" || info === null || Array.isArray(info)) tensor(`is described by ${show(info)}, not {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets, ...rest } = info as Record<string, unknown>;
    if (Object.keys(rest).length > 0) tensor(`has unknown field ${show(Object.keys(rest)[0])} (a tensor has dtype, shape, data_offsets)`);
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) tensor(`has unknown dtype ${show(dtype)}`);
    if (dtype !== "F32" && !(dtype as string in READ)) tensor(`has dtype ${dtype}, which is not read (F32, F16, BF16, F64 and the integer and boolean dtypes are)`);
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(isIndex)) {
      tensor(`has shape ${show(shape)}; a shape is a list of at most ${MAX_RANK} non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
      tensor(`has data_offsets ${show(offsets)}; they are [begin, end], non-negative integers with begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) tensor(`has data_offsets [${begin}, ${end}] past the ${dataLength} data bytes of the file (truncated?)`);
    let elements = 1;
    for (const d of shape as number[]) elements *= d; // inexact only when huge (or NaN from Infinity × 0): then it matches no byte count
    if (elements * DTYPE_BYTES[dtype as string] !== end - begin) {
      tensor(`has shape [${shape}] of ${dtype} (${elements} × ${DTYPE_BYTES[dtype as string]} bytes) but data_offsets [${begin}, ${end}] hold ${end - begin} bytes`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // the byte ranges tile [0, dataLength): sorted by begin, each starts where the previous ended
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.begin < at) fail(`tensor ${show(e.name)} has data_offsets [${e.begin}, ${e.end}] overlapping the previous tensor's bytes (which end at ${at})`);
    if (e.begin > at) fail(`tensor ${show(e.name)} has data_offsets [${e.begin}, ${e.end}], leaving bytes ${at}..${e.begin} of the data unused (a hole)`);
    at = e.end;
  }
  if (at !== dataLength) fail(`the tensors end at data byte ${at} but the file has ${dataLength} data bytes (trailing bytes, or a wrong header?)`);

  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const copy = new Uint8Array(bytes.subarray(base + e.begin, base + e.end)); // an aligned copy (Buffer.slice would be a view)
    if (e.dtype === "F32") {
      tensors.set(e.name, { shape: e.shape, data: new Float32Array(copy.buffer, 0, (e.end - e.begin) / 4) });
      continue;
    }
    const read = READ[e.dtype], view = new DataView(copy.buffer);
    const data = new Float32Array((e.end - e.begin) / DTYPE_BYTES[e.dtype]);
    for (let i = 0; i < data.length; i++) {
      const x = read(view, i);
      if (INTEGER.has(e.dtype) && Math.abs(x) > EXACT_INTEGER) fail(`tensor ${show(e.name)} (${e.dtype}) holds ${x} at index ${i}, beyond ±2^24: float32 does not hold it exactly`);
      data[i] = x;
    }
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Throws a `SafetensorsError` for the first tensor holding NaN or ±Inf values, e.g.
 * `"models/x.safetensors": tensor "dit.blocks.0.w" holds 3 NaN/Inf values (first at index 17)`.
 * Weights are loaded only where they will be used, so a non-finite value is never meant.
 */
export function assertFinite(tensors: Iterable<[string, { data: ArrayLike<number> }]>, source: string): void {
  for (const [name, t] of tensors) {
    let count = 0;
    let first = -1;
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) {
        if (count++ === 0) first = i;
      }
    }
    if (count > 0) throw new SafetensorsError(source, `tensor ${show(name)} holds ${count} NaN/Inf value${count === 1 ? "" : "s"} (first at index ${first})`);
  }
}

/** Writes a file atomically: to a temporary name in the same folder, then rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true }); // never leave the temporary file behind
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "ENOTDIR" || code === "ENOTEMPTY" || code === "EEXIST") throw new Error(`cannot write "${path}": it is a directory (give a file name)`);
    throw e;
  }
}

export function saveSafetensors(path: string, tensors: Map<string, HostTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function loadSafetensors(path: string): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(shippedPath(path));
  } catch {
    throw new Error(`cannot read "${path}": check the path`);
  }
  return decodeSafetensors(bytes, path);
}
