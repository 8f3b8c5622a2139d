/**
 * A small protobuf decoder for ONNX `ModelProto` files (onnx.proto, proto2 wire format), written
 * by hand so that importing a user's model needs no protobuf library (the executor's writer,
 * src/executor/onnxProto.ts, is the same idea in the other direction).
 *
 * Only what an importer needs is decoded: the model's IR version and opset imports, the main
 * graph (nodes, attributes, initializers, inputs, outputs, value_info), tensors in every storage
 * form (raw_data, the typed repeated fields, and ONNX external data next to the model file).
 * Tensor elements come out as float32 for the floating types (float16 and bfloat16 are widened
 * exactly) and as JS numbers for integers and bools (int64 beyond 2^53 is rounded, which only
 * matters for the INT64_MAX "to the end" sentinel of Slice, where rounding is harmless).
 *
 * Every error is one line naming the file: `"x.onnx" is not a readable ONNX model: …`.
 */
import { readFileSync, statSync, openSync, readSync, closeSync, realpathSync } from "node:fs";
import { dirname, resolve, relative, isAbsolute, sep } from "node:path";
import { halfToFloat, bfloatToFloat } from "../numerics/float16.ts";

/** ONNX `TensorProto.DataType` names by code. */
export const ONNX_DTYPES: Record<number, string> = {
  1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
  9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
  16: "bfloat16",
};

export type OnnxTensor = {
  readonly name: string;
  readonly dims: readonly number[];
  /** The ONNX element type name (`ONNX_DTYPES`). */
  readonly dtype: string;
  /** Elements, row-major: float32 for the floating types, numbers for integers and bools. */
  readonly data: Float32Array | number[];
};

export type OnnxAttribute = {
  readonly name: string;
  /** In a function body: the calling node's attribute this one takes its value from (ref_attr_name). */
  readonly ref?: string;
  readonly type: "float" | "int" | "string" | "tensor" | "graph" | "floats" | "ints" | "strings" | "tensors" | "graphs" | "other";
  readonly f?: number;
  readonly i?: number;
  readonly s?: string;
  readonly t?: OnnxTensor;
  /** A subgraph (If's branches). */
  readonly g?: OnnxGraph;
  readonly floats?: readonly number[];
  readonly ints?: readonly number[];
  readonly strings?: readonly string[];
};

export type OnnxNode = {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, OnnxAttribute>>;
};

/** A dimension: a number, or the name of a symbolic dimension (`dim_param`), or null when unknown. */
export type OnnxDim = number | string | null;

export type OnnxValueInfo = {
  readonly name: string;
  /** Element type name; "" when the value info has no tensor type. */
  readonly dtype: string;
  /** null when the shape is not given. */
  readonly shape: readonly OnnxDim[] | null;
};

export type OnnxGraph = {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxTensor[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly valueInfo: readonly OnnxValueInfo[];
};

export type OnnxModel = {
  /** The file it was read from (for messages), or a caller-given name. */
  readonly file: string;
  readonly irVersion: number;
  readonly producer: string;
  /** Opset version per domain ("" is the default ONNX domain). */
  readonly opsets: Readonly<Record<string, number>>;
  readonly graph: OnnxGraph;
};

/** A file that is not a readable ONNX model (one line, naming the file). */
/** A message with the control characters a file's own names may hold (a newline in a tensor name) escaped: one printable line. */
export function oneLine(message: string): string {
  return message.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export class OnnxReadError extends Error {
  constructor(file: string, reason: string) {
    super(oneLine(`"${file}" is not a readable ONNX model: ${reason}`));
    this.name = "OnnxReadError";
  }
}

/** Reads an `.onnx` file and the external data files it refers to (relative to its folder). */
export function readOnnxFile(file: string): OnnxModel {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new OnnxReadError(file, (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message.split("\n")[0]);
  }
  return decodeOnnx(bytes, { file, dir: dirname(file) });
}

/**
 * Decodes the bytes of an `.onnx` file. `dir` is the folder external data is looked up in; without
 * it, a model with external data is rejected.
 */
export function decodeOnnx(bytes: Uint8Array, where: { file: string; dir?: string }): OnnxModel {
  const { file } = where;
  const fail = (reason: string): never => {
    throw new OnnxReadError(file, reason);
  };
  let m: ReturnType<typeof decodeModelFields>;
  try {
    m = decodeModelFields(new Reader(bytes, 0, bytes.length));
  } catch (e) {
    if (e instanceof WireError) fail(e.message);
    throw e;
  }
  if (m.irVersion === undefined) fail("no ir_version (not an ONNX ModelProto)");
  if (m.graph === undefined) fail("no graph");
  if (!("" in m.opsets) && !("ai.onnx" in m.opsets)) fail("no opset_import for the default domain (truncated?)");
  const external = new ExternalData(file, where.dir);
  let graph: OnnxGraph;
  try {
    graph = decodeGraph(m.graph!, external);
    const functions = m.functions.map((f) => decodeFunction(f, external));
    if (functions.length > 0) graph = { ...graph, nodes: inlineFunctions(graph.nodes, functions) };
  } catch (e) {
    if (e instanceof WireError) fail(e.message);
    throw e;
  } finally {
    external.close();
  }
  return { file, irVersion: m.irVersion!, producer: m.producer, opsets: m.opsets, graph };
}

// ---------------------------------------------------------------------------------------------
// Wire format

class WireError extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: false });

/** A cursor over bytes [pos, end) of a buffer. */
class Reader {
  constructor(readonly buf: Uint8Array, public pos: number, readonly end: number) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a bigint (int64 fields may use all 10 bytes). */
  varintBig(): bigint {
    let result = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new WireError(`malformed varint at byte ${this.pos}`);
  }

  /** A varint as a signed 64-bit number (two's complement), rounded to a JS number. */
  int(): number {
    const v = this.varintBig();
    return Number(BigInt.asIntN(64, v));
  }

  /** A length prefix: must fit in what is left. */
  length(): number {
    const at = this.pos;
    const n = this.int();
    if (n < 0 || this.pos + n > this.end) throw new WireError(`truncated: a field at byte ${at} needs ${n} bytes, ${this.end - this.pos} left`);
    return n;
  }

  sub(): Reader {
    const n = this.length();
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  bytes(): Uint8Array {
    const n = this.length();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(): string {
    return utf8.decode(this.bytes());
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw new WireError(`truncated fixed32 at byte ${this.pos}`);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  fixed64(): number {
    if (this.pos + 8 > this.end) throw new WireError(`truncated fixed64 at byte ${this.pos}`);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** The next (field, wire type), checked for a valid wire type. */
  tag(): [number, number] {
    const at = this.pos;
    const t = this.int();
    const field = Math.floor(t / 8), wire = t & 7;
    if (field === 0 || (wire !== 0 && wire !== 1 && wire !== 2 && wire !== 5)) {
      throw new WireError(`invalid protobuf tag ${t} at byte ${at}`);
    }
    return [field, wire];
  }

  skip(wire: number): void {
    if (wire === 0) this.varintBig();
    else if (wire === 1) this.fixed64();
    else if (wire === 2) {
      // the length first: `this.pos += this.length()` would add it to the position from before its own varint
      const n = this.length();
      if (this.pos + n > this.end) throw new WireError(`truncated: a field at byte ${this.pos} needs ${n} bytes, ${this.end - this.pos} left`);
      this.pos += n;
    }
    else if (wire === 5) this.fixed32();
  }

  /** Repeated varints, packed (wire 2) or one at a time (wire 0). */
  ints(wire: number, into: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) into.push(r.int());
    } else into.push(this.int());
  }

  floats(wire: number, into: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) into.push(r.fixed32());
    } else into.push(this.fixed32());
  }

  doubles(wire: number, into: number[]): void {
    if (wire === 2) {
      const r = this.sub();
      while (!r.done) into.push(r.fixed64());
    } else into.push(this.fixed64());
  }
}

/** Skips a field of wire type `wire` (length-delimited ones by their length). */
function skipField(r: Reader, wire: number): void {
  r.skip(wire);
}

/**
 * A message whose fields of interest are all length-delimited: each such field's number goes to
 * `read`, which consumes its value (or returns false to leave it unread: it is skipped, as is
 * every field of another wire type).
 */
function readFields(r: Reader, read: (field: number) => boolean | void): void {
  while (!r.done) {
    const [f, w] = r.tag();
    if (w !== 2 || read(f) === false) skipField(r, w);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages (field numbers from onnx.proto)

function decodeModelFields(r: Reader) {
  let irVersion: number | undefined, producer = "", graph: Reader | undefined;
  const opsets: Record<string, number> = {};
  const functions: Reader[] = [];
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 0) irVersion = r.int();
    else if (f === 2 && w === 2) producer = r.string();
    else if (f === 7 && w === 2) graph = r.sub();
    else if (f === 8 && w === 2) {
      const o = r.sub();
      let domain = "", version = 1;
      while (!o.done) {
        const [g, v] = o.tag();
        if (g === 1 && v === 2) domain = o.string();
        else if (g === 2 && v === 0) version = o.int();
        else skipField(o, v);
      }
      opsets[domain] = version;
    } else if (f === 25 && w === 2) functions.push(r.sub());
    else skipField(r, w);
  }
  return { irVersion, producer, graph, opsets, functions };
}

/** Subgraphs (If's branches) nest at most this deep: a file nesting deeper is refused, not a stack overflow. */
const MAX_GRAPH_DEPTH = 16;

function decodeGraph(r: Reader, external: ExternalData, depth = 0): OnnxGraph {
  if (depth > MAX_GRAPH_DEPTH) throw new WireError(`subgraphs nested more than ${MAX_GRAPH_DEPTH} deep`);
  let name = "";
  const nodes: OnnxNode[] = [], initializers: OnnxTensor[] = [];
  const inputs: OnnxValueInfo[] = [], outputs: OnnxValueInfo[] = [], valueInfo: OnnxValueInfo[] = [];
  readFields(r, (f) => {
    switch (f) {
      case 1: nodes.push(decodeNode(r.sub(), external, depth)); break;
      case 2: name = r.string(); break;
      case 5: initializers.push(decodeTensor(r.sub(), external)); break;
      case 11: inputs.push(decodeValueInfo(r.sub())); break;
      case 12: outputs.push(decodeValueInfo(r.sub())); break;
      case 13: valueInfo.push(decodeValueInfo(r.sub())); break;
      default: return false;
    }
  });
  return { name, nodes, initializers, inputs, outputs, valueInfo };
}

function decodeNode(r: Reader, external: ExternalData, depth = 0): OnnxNode {
  let name = "", opType = "", domain = "";
  const inputs: string[] = [], outputs: string[] = [];
  const attributes: Record<string, OnnxAttribute> = {};
  readFields(r, (f) => {
    switch (f) {
      case 1: inputs.push(r.string()); break;
      case 2: outputs.push(r.string()); break;
      case 3: name = r.string(); break;
      case 4: opType = r.string(); break;
      case 7: domain = r.string(); break;
      case 5: {
        const a = decodeAttribute(r.sub(), external, depth);
        attributes[a.name] = a;
        break;
      }
      default: return false;
    }
  });
  return { name, opType, domain: domain === "ai.onnx" ? "" : domain, inputs, outputs, attributes };
}

/** A model-local function (FunctionProto): its body is inlined where the graph calls it. */
type OnnxFunction = {
  readonly name: string;
  readonly domain: string;
  readonly overload: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly nodes: readonly OnnxNode[];
  /** Default values of its attributes (attribute_proto). */
  readonly defaults: Readonly<Record<string, OnnxAttribute>>;
};

function decodeFunction(r: Reader, external: ExternalData): OnnxFunction {
  let name = "", domain = "", overload = "";
  const inputs: string[] = [], outputs: string[] = [], nodes: OnnxNode[] = [];
  const defaults: Record<string, OnnxAttribute> = {};
  readFields(r, (f) => {
    switch (f) {
      case 1: name = r.string(); break;
      case 4: inputs.push(r.string()); break;
      case 5: outputs.push(r.string()); break;
      case 7: nodes.push(decodeNode(r.sub(), external)); break;
      case 10: domain = r.string(); break;
      case 11: { const a = decodeAttribute(r.sub(), external); defaults[a.name] = a; break; }
      case 13: overload = r.string(); break;
      default: return false;
    }
  });
  return { name, domain: domain === "ai.onnx" ? "" : domain, overload, inputs, outputs, nodes, defaults };
}

/** Calls nested deeper than this are refused (a function that calls itself would never end). */
const MAX_FUNCTION_DEPTH = 32;

/**
 * The graph's nodes with every call of a model-local function replaced by its body: formal inputs
 * and outputs renamed to the call's, the body's own values to names unique to the call, and each
 * attribute that refers to the caller's (ref_attr_name) given the caller's value (or the
 * function's default; else left out, as the op's own default applies).
 */
function inlineFunctions(nodes: readonly OnnxNode[], functions: readonly OnnxFunction[]): OnnxNode[] {
  const byKey = new Map(functions.map((f) => [`${f.domain}|${f.name}|${f.overload}`, f]));
  let calls = 0;
  const expand = (list: readonly OnnxNode[], depth: number): OnnxNode[] => list.flatMap((n) => {
    const f = byKey.get(`${n.domain}|${n.opType}|`);
    if (f === undefined) return [n];
    if (depth >= MAX_FUNCTION_DEPTH) throw new WireError(`function ${n.domain}.${n.opType} calls itself, or nests deeper than ${MAX_FUNCTION_DEPTH}`);
    const call = `${n.name || n.outputs[0] || f.name}#${calls++}`;
    const rename = new Map<string, string>();
    f.inputs.forEach((x, i) => rename.set(x, n.inputs[i] ?? ""));
    f.outputs.forEach((x, i) => rename.set(x, n.outputs[i] ?? ""));
    const named = (x: string) => (x === "" ? "" : rename.get(x) ?? `${call}/${x}`);
    const body = f.nodes.map((b): OnnxNode => {
      const attributes: Record<string, OnnxAttribute> = {};
      for (const [k, a] of Object.entries(b.attributes)) {
        if (a.ref === undefined) attributes[k] = a.g ? { ...a, g: renameGraph(a.g, named) } : a;
        else {
          const given = n.attributes[a.ref] ?? f.defaults[a.ref];
          if (given !== undefined) attributes[k] = { ...given, name: k };
        }
      }
      return { ...b, name: `${call}/${b.name || b.outputs[0]}`, inputs: b.inputs.map(named), outputs: b.outputs.map(named), attributes };
    });
    return expand(body, depth + 1);
  });
  // calls inside subgraphs (an If's branches) are inlined too
  const expandAll = (list: readonly OnnxNode[], depth: number): OnnxNode[] => expand(list, depth).map((n) => {
    const graphs = Object.entries(n.attributes).filter(([, a]) => a.g);
    if (graphs.length === 0) return n;
    const attributes = { ...n.attributes };
    for (const [k, a] of graphs) attributes[k] = { ...a, g: { ...a.g!, nodes: expandAll(a.g!.nodes, depth + 1) } };
    return { ...n, attributes };
  });
  return expandAll(nodes, 0);
}

/**
 * A subgraph of an inlined function body with every value renamed as the body's are (a
 * function sees no names but its own, so its branches' reads of the body and their own values
 * all become the call's).
 */
function renameGraph(g: OnnxGraph, named: (x: string) => string): OnnxGraph {
  const info = (v: OnnxValueInfo): OnnxValueInfo => ({ ...v, name: named(v.name) });
  return {
    ...g,
    nodes: g.nodes.map((n) => ({
      ...n, inputs: n.inputs.map(named), outputs: n.outputs.map(named),
      attributes: Object.fromEntries(Object.entries(n.attributes).map(([k, a]) => [k, a.g ? { ...a, g: renameGraph(a.g, named) } : a])),
    })),
    initializers: g.initializers.map((t) => ({ ...t, name: named(t.name) })),
    inputs: g.inputs.map(info), outputs: g.outputs.map(info), valueInfo: g.valueInfo.map(info),
  };
}

const ATTR_TYPES: Record<number, OnnxAttribute["type"]> = {
  1: "float", 2: "int", 3: "string", 4: "tensor", 5: "graph", 6: "floats", 7: "ints", 8: "strings", 9: "tensors", 10: "graphs",
};

function decodeAttribute(r: Reader, external: ExternalData, depth = 0): OnnxAttribute {
  let name = "", type = 0, f: number | undefined, i: number | undefined, s: string | undefined, t: OnnxTensor | undefined, ref: string | undefined, g: OnnxGraph | undefined;
  const floats: number[] = [], ints: number[] = [], strings: string[] = [];
  while (!r.done) {
    const [field, w] = r.tag();
    if (field === 1 && w === 2) name = r.string();
    else if (field === 20 && w === 0) type = r.int();
    else if (field === 2 && w === 5) f = r.fixed32();
    else if (field === 3 && w === 0) i = r.int();
    else if (field === 4 && w === 2) s = r.string();
    else if (field === 5 && w === 2) t = decodeTensor(r.sub(), external);
    else if (field === 6 && w === 2) g = decodeGraph(r.sub(), external, depth + 1);
    else if (field === 7) r.floats(w, floats);
    else if (field === 8) r.ints(w, ints);
    else if (field === 9 && w === 2) strings.push(r.string());
    else if (field === 21 && w === 2) ref = r.string();
    else skipField(r, w);
  }
  // Old writers may omit `type`; infer it from the field that is set.
  const kind = ATTR_TYPES[type] ?? (f !== undefined ? "float" : i !== undefined ? "int" : s !== undefined ? "string"
    : t !== undefined ? "tensor" : g !== undefined ? "graph" : ints.length ? "ints" : floats.length ? "floats" : strings.length ? "strings" : "other");
  return { name, type: kind, f, i, s, t, floats, ints, strings, ...(ref !== undefined ? { ref } : {}), ...(g !== undefined ? { g } : {}) };
}

function decodeValueInfo(r: Reader): OnnxValueInfo {
  let name = "", dtype = "", shape: OnnxDim[] | null = null;
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) name = r.string();
    else if (f === 2 && w === 2) {
      const type = r.sub();
      while (!type.done) {
        const [g, v] = type.tag();
        if (g === 1 && v === 2) {
          // TypeProto.Tensor: elem_type (1), shape (2)
          const tt = type.sub();
          while (!tt.done) {
            const [h, x] = tt.tag();
            if (h === 1 && x === 0) dtype = ONNX_DTYPES[tt.int()] ?? "unknown";
            else if (h === 2 && x === 2) {
              shape = [];
              const sh = tt.sub();
              while (!sh.done) {
                const [k, y] = sh.tag();
                if (k === 1 && y === 2) {
                  const d = sh.sub();
                  let dim: OnnxDim = null;
                  while (!d.done) {
                    const [m, z] = d.tag();
                    if (m === 1 && z === 0) dim = d.int();
                    else if (m === 2 && z === 2) dim = d.string();
                    else skipField(d, z);
                  }
                  shape.push(dim);
                } else skipField(sh, y);
              }
            } else skipField(tt, x);
          }
        } else skipField(type, v);
      }
    } else skipField(r, w);
  }
  return { name, dtype, shape };
}

const BYTES_PER: Record<string, number> = {
  float32: 4, uint8: 1, int8: 1, uint16: 2, int16: 2, int32: 4, int64: 8, bool: 1, float16: 2, float64: 8,
  uint32: 4, uint64: 8, bfloat16: 2,
};

function decodeTensor(r: Reader, external: ExternalData): OnnxTensor {
  const dims: number[] = [];
  let code = 0, name = "", raw: Uint8Array | undefined, location = 0;
  const floatData: number[] = [], int32Data: number[] = [], int64Data: number[] = [], doubleData: number[] = [];
  const ext: Record<string, string> = {};
  while (!r.done) {
    const [f, w] = r.tag();
    switch (f) {
      case 1: r.ints(w, dims); break;
      case 2: code = r.int(); break;
      case 4: r.floats(w, floatData); break;
      case 5: r.ints(w, int32Data); break;
      case 7: r.ints(w, int64Data); break;
      case 8: name = r.string(); break;
      case 9: raw = r.bytes(); break;
      case 10: r.doubles(w, doubleData); break;
      case 11: r.ints(w, int64Data); break; // uint64_data (values < 2^63 here)
      case 13: {
        const e = r.sub();
        let k = "", v = "";
        while (!e.done) {
          const [g, x] = e.tag();
          if (g === 1 && x === 2) k = e.string();
          else if (g === 2 && x === 2) v = e.string();
          else skipField(e, x);
        }
        ext[k] = v;
        break;
      }
      case 14: location = r.int(); break;
      default: skipField(r, w);
    }
  }
  const dtype = ONNX_DTYPES[code] ?? `type ${code}`;
  const count = dims.reduce((a, b) => a * b, 1);
  const what = `tensor "${name}"`;
  if (dtype === "string" || dtype.startsWith("complex") || !(dtype in BYTES_PER)) {
    throw new WireError(`${what} has element type ${dtype}, which is not supported`);
  }
  if (location === 1) raw = external.read(ext, count * BYTES_PER[dtype], what);
  let data: Float32Array | number[];
  if (raw !== undefined) {
    if (raw.length !== count * BYTES_PER[dtype]) {
      throw new WireError(`${what} [${dims}] of ${dtype} needs ${count * BYTES_PER[dtype]} bytes of raw data, has ${raw.length}`);
    }
    data = fromRaw(raw, dtype, count);
  } else {
    // Typed fields: float_data (float32), int32_data (int32 and every narrower type, float16 and
    // bfloat16 as their bit patterns), int64_data / uint64_data, double_data.
    const src = dtype === "float32" ? floatData : dtype === "float64" ? doubleData
      : dtype === "int64" || dtype === "uint64" || dtype === "uint32" ? (int64Data.length ? int64Data : int32Data) : int32Data;
    if (src.length !== count) throw new WireError(`${what} [${dims}] of ${dtype} has ${src.length} elements, needs ${count}`);
    if (dtype === "float16") data = Float32Array.from(src, halfToFloat);
    else if (dtype === "bfloat16") data = Float32Array.from(src, bfloatToFloat);
    else if (dtype === "float32" || dtype === "float64") data = Float32Array.from(src);
    else if (dtype === "bool") data = src.map((x) => (x ? 1 : 0));
    else data = src;
  }
  return { name, dims, dtype, data };
}

function fromRaw(raw: Uint8Array, dtype: string, n: number): Float32Array | number[] {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = (f: (i: number) => number) => globalThis.Array.from({ length: n }, (_, i) => f(i));
  switch (dtype) {
    case "float32": return Float32Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true));
    case "float64": return Float32Array.from({ length: n }, (_, i) => dv.getFloat64(8 * i, true));
    case "float16": return Float32Array.from({ length: n }, (_, i) => halfToFloat(dv.getUint16(2 * i, true)));
    case "bfloat16": return Float32Array.from({ length: n }, (_, i) => bfloatToFloat(dv.getUint16(2 * i, true)));
    case "int8": return out((i) => dv.getInt8(i));
    case "uint8": return out((i) => dv.getUint8(i));
    case "bool": return out((i) => (dv.getUint8(i) ? 1 : 0));
    case "int16": return out((i) => dv.getInt16(2 * i, true));
    case "uint16": return out((i) => dv.getUint16(2 * i, true));
    case "int32": return out((i) => dv.getInt32(4 * i, true));
    case "uint32": return out((i) => dv.getUint32(4 * i, true));
    case "int64": return out((i) => Number(dv.getBigInt64(8 * i, true)));
    case "uint64": return out((i) => Number(dv.getBigUint64(8 * i, true)));
  }
  throw new WireError(`element type ${dtype} is not supported`);
}


/**
 * ONNX external data: a tensor's bytes at `offset`/`length` of the file `location`, relative to
 * the model's folder. Paths that leave the folder (absolute, `..`, or a symlink out) are
 * rejected, as onnxruntime does, so a model file cannot make us read arbitrary files.
 */
class ExternalData {
  readonly #fds = new Map<string, { fd: number; size: number }>();
  constructor(readonly file: string, readonly dir: string | undefined) {}

  read(entries: Record<string, string>, expected: number, what: string): Uint8Array {
    const location = entries.location;
    if (!location) throw new WireError(`${what} is stored externally but names no location`);
    if (this.dir === undefined) throw new WireError(`${what} is stored in external file "${location}", and no folder was given to find it`);
    if (isAbsolute(location) || location.split(/[\\/]/).includes("..")) {
      throw new WireError(`${what}: external data path "${location}" leaves the model's folder`);
    }
    const path = resolve(this.dir, location);
    let handle = this.#fds.get(path);
    if (handle === undefined) {
      try {
        const real = realpathSync(path), base = realpathSync(this.dir);
        const rel = relative(base, real);
        if (rel.startsWith(".." + sep) || rel === ".." || isAbsolute(rel)) {
          throw new WireError(`${what}: external data path "${location}" leaves the model's folder`);
        }
        handle = { fd: openSync(real, "r"), size: statSync(real).size };
      } catch (e) {
        if (e instanceof WireError) throw e;
        throw new WireError(`${what}: cannot open external data file "${location}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      this.#fds.set(path, handle);
    }
    const offset = entries.offset === undefined ? 0 : Number(entries.offset);
    const length = entries.length === undefined ? expected : Number(entries.length);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new WireError(`${what}: bad external data offset/length "${entries.offset}"/"${entries.length}"`);
    }
    if (offset + length > handle.size) {
      throw new WireError(`${what}: external data [${offset}, ${offset + length}) is past the end of "${location}" (${handle.size} bytes)`);
    }
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(handle.fd, out, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return out;
  }

  close(): void {
    for (const { fd } of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}
