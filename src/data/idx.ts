/**
 * The IDX format of (Fashion-)MNIST: big-endian magic `0x0000 <type> <ndim>`, ndim big-endian
 * uint32 dimensions, then the values. Only unsigned bytes (type 0x08) are used by the data sets.
 * Files may be gzip-compressed (as Debian ships them).
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

export type IdxArray = { shape: number[]; data: Uint8Array };

/** Parses IDX bytes (gzip or raw). `source` names the file in errors. */
export function parseIdx(bytes: Uint8Array, source = "IDX data"): IdxArray {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) throw new Error(`${source}: not an IDX file (bad magic number)`);
  if (raw[2] !== 0x08) throw new Error(`${source}: IDX value type 0x${raw[2].toString(16)} is not unsigned bytes`);
  const ndim = raw[3];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const start = 4 + 4 * ndim;
  const size = shape.reduce((a, b) => a * b, 1);
  if (raw.length < start + size) throw new Error(`${source}: ${raw.length - start} values for shape [${shape}] (truncated?)`);
  return { shape, data: raw.subarray(start, start + size) };
}

/** Encodes unsigned bytes as an IDX file (used to write the test fixture). */
export function encodeIdx(shape: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = shape.length;
  shape.forEach((n, i) => view.setUint32(4 + 4 * i, n, false));
  out.set(data, 4 + 4 * shape.length);
  return out;
}

export function readIdx(path: string): IdxArray {
  return parseIdx(readFileSync(path), path);
}
