/**
 * A minimal protobuf encoder for ONNX `ModelProto` (onnx.proto, proto2): one graph of nodes in
 * the default domain, attributes of type int / ints / float / string, initializers as raw
 * little-endian bytes, and typed inputs/outputs with static shapes. Written by hand so the
 * executor needs no protobuf library; only the fields used here are encoded.
 */

/** `TensorProto.DataType` values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

export type Attribute =
  | { name: string; type: "int"; value: number }
  | { name: string; type: "ints"; value: readonly number[] }
  | { name: string; type: "float"; value: number }
  | { name: string; type: "string"; value: string }
  | { name: string; type: "graph"; value: GraphProto };

/** Inside a function body: the value of the calling node's attribute `ref` (AttributeProto.ref_attr_name). */
export type RefAttribute = { name: string; type: "ref"; of: "int" | "ints" | "float" | "string"; ref: string };
/** A node of a function body: its attributes may refer to the caller's. */
export type FunctionNode = Omit<NodeProto, "attributes"> & { attributes?: readonly (Attribute | RefAttribute)[] };

/** A model-local function (FunctionProto), as exporters that keep modules as functions write them. */
export type FunctionProto = {
  name: string;
  domain: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Attribute names the body may refer to. */
  attributes?: readonly string[];
  nodes: readonly FunctionNode[];
};

export type NodeProto = {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attributes?: readonly Attribute[];
  /** The operator's domain ("" or absent: the default ONNX domain). */
  domain?: string;
};

/** A constant tensor; `raw` holds the elements little-endian, row-major. */
export type TensorProto = { name: string; dims: readonly number[]; dataType: DataTypeCode; raw: Uint8Array };

/** A dim is a number, or a name (a symbolic dim, e.g. the batch). */
export type ValueInfoProto = { name: string; elemType: DataTypeCode; shape: readonly (number | string)[] };

export type GraphProto = {
  name: string;
  nodes: readonly NodeProto[];
  initializers: readonly TensorProto[];
  inputs: readonly ValueInfoProto[];
  outputs: readonly ValueInfoProto[];
};

export type ModelProto = {
  graph: GraphProto;
  /** Default-domain opset (17 here). */
  opsetVersion?: number;
  /** IR version; 8 is the one that goes with opset 17. */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  /** Model-local functions, and the opset version of each of their domains. */
  functions?: readonly FunctionProto[];
};

export const attrInt = (name: string, value: number): Attribute => ({ name, type: "int", value });
export const attrInts = (name: string, value: readonly number[]): Attribute => ({ name, type: "ints", value });
export const attrFloat = (name: string, value: number): Attribute => ({ name, type: "float", value });
export const attrString = (name: string, value: string): Attribute => ({ name, type: "string", value });
export const attrGraph = (name: string, value: GraphProto): Attribute => ({ name, type: "graph", value });

export function float32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  const data = Float32Array.from(values);
  checkCount(name, dims, data.length);
  return { name, dims, dataType: DataType.FLOAT, raw: littleEndianBytes(data) };
}

export function int64Tensor(name: string, dims: readonly number[], values: readonly number[]): TensorProto {
  checkCount(name, dims, values.length);
  const data = new BigInt64Array(values.length);
  values.forEach((v, i) => {
    if (!Number.isSafeInteger(v)) throw new RangeError(`int64 tensor ${name}: ${v} is not a safe integer`);
    data[i] = BigInt(v);
  });
  return { name, dims, dataType: DataType.INT64, raw: littleEndianBytes(data) };
}

export function int32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  const data = Int32Array.from(values);
  checkCount(name, dims, data.length);
  return { name, dims, dataType: DataType.INT32, raw: littleEndianBytes(data) };
}

export function uint32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  const data = Uint32Array.from(values);
  checkCount(name, dims, data.length);
  return { name, dims, dataType: DataType.UINT32, raw: littleEndianBytes(data) };
}

export function boolTensor(name: string, dims: readonly number[], values: ArrayLike<number | boolean>): TensorProto {
  const data = Uint8Array.from(globalThis.Array.from(values, (v) => (v ? 1 : 0)));
  checkCount(name, dims, data.length);
  return { name, dims, dataType: DataType.BOOL, raw: data };
}

function checkCount(name: string, dims: readonly number[], n: number): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== n) throw new RangeError(`tensor ${name}: dims [${dims}] hold ${expected} elements, got ${n}`);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianBytes(data: Float32Array | Int32Array | Uint32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(bytes.length);
  const w = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += w) for (let j = 0; j < w; j++) out[i + j] = bytes[i + w - 1 - j];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Wire format

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;
const utf8 = new TextEncoder();

/** Accumulates encoded chunks; nested messages are appended without re-copying their bytes. */
class Writer {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  private varint(value: number | bigint): void {
    const bytes: number[] = [];
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      let v = value;
      while (v >= 0x80) {
        bytes.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      bytes.push(v);
    } else {
      // Negative (two's complement, 10 bytes) or big values.
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        bytes.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      bytes.push(Number(v));
    }
    this.push(Uint8Array.from(bytes));
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, value: number): void {
    if (!Number.isInteger(value)) throw new RangeError(`protobuf field ${field}: ${value} is not an integer`);
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, utf8.encode(value));
  }

  message(field: number, sub: Writer): void {
    this.tag(field, WIRE_LEN);
    this.varint(sub.length);
    for (const c of sub.chunks) this.push(c);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

const ATTR_TYPE = { float: 1, int: 2, string: 3, graph: 5, ints: 7 } as const;

function encodeAttribute(a: Attribute | RefAttribute): Writer {
  const w = new Writer();
  w.string(1, a.name);
  if (a.type === "ref") {
    w.int(20, ATTR_TYPE[a.of]);
    w.string(21, a.ref);
    return w;
  }
  w.int(20, ATTR_TYPE[a.type]);
  switch (a.type) {
    case "float":
      w.float(2, a.value);
      break;
    case "int":
      w.int(3, a.value);
      break;
    case "string":
      w.string(4, a.value);
      break;
    case "ints":
      for (const v of a.value) w.int(8, v);
      break;
    case "graph":
      w.message(6, encodeGraph(a.value));
      break;
  }
  return w;
}

function encodeNode(n: NodeProto | FunctionNode): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, encodeAttribute(a));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeTensor(t: TensorProto): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

function encodeValueInfo(v: ValueInfoProto): Writer {
  const shape = new Writer();
  for (const d of v.shape) {
    const dim = new Writer();
    if (typeof d === "string") dim.string(2, d); // dim_param
    else dim.int(1, d); // dim_value
    shape.message(1, dim);
  }
  const tensorType = new Writer();
  tensorType.int(1, v.elemType);
  tensorType.message(2, shape);
  const type = new Writer();
  type.message(1, tensorType);
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

function encodeGraph(g: GraphProto): Writer {
  const w = new Writer();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  for (const i of g.inputs) w.message(11, encodeValueInfo(i));
  for (const o of g.outputs) w.message(12, encodeValueInfo(o));
  return w;
}

/** Serialises a model to the bytes of an `.onnx` file. */
export function encodeModel(m: ModelProto): Uint8Array {
  const w = new Writer();
  w.int(1, m.irVersion ?? 8);
  w.string(2, m.producerName ?? "tbcm");
  if (m.producerVersion) w.string(3, m.producerVersion);
  w.message(7, encodeGraph(m.graph));
  const opset = new Writer();
  opset.string(1, ""); // the default domain (ai.onnx)
  opset.int(2, m.opsetVersion ?? 17);
  w.message(8, opset);
  for (const domain of new Set((m.functions ?? []).map((f) => f.domain))) {
    const d = new Writer();
    d.string(1, domain);
    d.int(2, 1);
    w.message(8, d);
  }
  for (const f of m.functions ?? []) {
    const fw = new Writer();
    fw.string(1, f.name);
    for (const i of f.inputs) fw.string(4, i);
    for (const o of f.outputs) fw.string(5, o);
    for (const a of f.attributes ?? []) fw.string(6, a);
    for (const n of f.nodes) fw.message(7, encodeNode(n));
    // the body's opsets: the default domain's, and the functions' own (a body may call another function)
    for (const [domain, version] of [["", m.opsetVersion ?? 17], ...[...new Set((m.functions ?? []).map((g) => g.domain))].map((d) => [d, 1])] as [string, number][]) {
      const imp = new Writer();
      imp.string(1, domain);
      imp.int(2, version);
      fw.message(9, imp);
    }
    fw.string(10, f.domain);
    w.message(25, fw);
  }
  return w.finish();
}
