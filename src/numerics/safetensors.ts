/**
 * safetensors I/O (the format of Hugging Face's `safetensors`, readable from Python):
 * 8-byte little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}}`
 * with an optional `__metadata__` of strings, then the raw little-endian tensor bytes.
 * Only float32 is written; float32 is read.
 */
import { readFileSync, writeFileSync, renameSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { shippedPath } from "../paths.ts";

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

/** Decodes safetensors bytes; a malformed file is an error saying what is wrong. */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error(`${source}: too short to be a safetensors file`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (8 + headerLength > bytes.length) throw new Error(`${source}: header length ${headerLength} exceeds the file (truncated?)`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new Error(`${source}: header is not valid JSON (not a safetensors file?)`);
  }
  const base = 8 + headerLength;
  const tensors = new Map<string, HostTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (info.dtype !== "F32") throw new Error(`${source}: tensor "${name}" has dtype ${info.dtype}; only F32 is supported`);
    const [begin, end] = info.data_offsets as [number, number];
    if (base + end > bytes.length) throw new Error(`${source}: tensor "${name}" runs past the end of the file (truncated?)`);
    const copy = new Uint8Array(bytes.subarray(base + begin, base + end)); // an aligned copy (Buffer.slice would be a view)
    tensors.set(name, { shape: info.shape, data: new Float32Array(copy.buffer, 0, (end - begin) / 4) });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

/** Writes a file atomically: to a temporary name in the same folder, then rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
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
