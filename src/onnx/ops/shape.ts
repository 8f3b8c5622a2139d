/**
 * ONNX ops that move or select elements — reshapes, transposes, slices, gathers by constant
 * indices, concatenation, tiling, pixel shuffles, triangles, cumulative sums — and the sources of
 * constants (Constant, Shape, ConstantOfShape, Range). Host values stay on the host, so shape
 * arithmetic folds; arrays use only primitives that lower.ts translates.
 */
import { numpy as np, type Array } from "@jax-js/jax";
import { Ctx, type Host, MAX_HOST_ELEMENTS, type Op, type Value, arr, broadcastIndex, checkedSize, host, hostGen, hostMap, lift, normAxis, prod, range, strides } from "../values.ts";
import type { OnnxTensor } from "../reader.ts";
import { broadcastShapes } from "../../numerics/shapes.ts";

// ---------------------------------------------------------------------------------------------
// Shape-changing helpers on arrays (lowerable primitives only)

/** Elements start, start+step, … (count of them) along `axis`; step ≥ 1. Slices and reshapes only. */
export function sliceAxis(x: Array, axis: number, start: number, count: number, step: number): Array {
  const dim = x.shape[axis];
  if (start === 0 && count === dim && step === 1) return x;
  const idx = (lo: number, hi: number) => x.shape.map((_, a) => (a === axis ? [lo, hi] : [])) as [number, number][];
  if (step === 1 || count <= 1) return x.slice(...idx(start, start + count));
  // Strided: take [start, start + count·step) (zero-padded past the end), view as [count, step], keep column 0.
  const need = start + count * step;
  let y = need <= dim ? x.slice(...idx(start, need))
    : np.pad(x.slice(...idx(start, dim)), x.shape.map((_, a) => (a === axis ? [0, need - dim] : [0, 0])) as [number, number][]);
  const shp = [...y.shape];
  y = y.reshape([...shp.slice(0, axis), count, step, ...shp.slice(axis + 1)]);
  y = y.slice(...y.shape.map((_, a) => (a === axis + 1 ? [0, 1] : [])) as [number, number][]);
  return y.reshape([...shp.slice(0, axis), count, ...shp.slice(axis + 1)]);
}

/** ONNX Slice bounds of one axis → (start, count, step), step may be negative. */
function sliceBounds(dim: number, start: number, end: number, step: number): [number, number] {
  if (step === 0) throw new Error("Slice step 0");
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
    return [start, Math.max(0, Math.ceil((end - start) / step))];
  }
  start = Math.min(Math.max(start, 0), dim - 1);
  end = Math.min(Math.max(end, -1), dim - 1);
  return [start, Math.max(0, Math.ceil((start - end) / -step))];
}

// ---------------------------------------------------------------------------------------------
// Structural ops (host and array)

function reshapeTarget(inShape: readonly number[], spec: readonly number[], allowzero: boolean): number[] {
  const out = spec.map((d, i) => (d === 0 && !allowzero ? inShape[i] : d));
  const known = prod(out.filter((d) => d !== -1));
  const n = prod(inShape);
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1) throw new Error(`Reshape shape [${spec}] has more than one -1`);
  if (neg === 1) {
    if (known === 0 || n % known !== 0) throw new Error(`cannot reshape [${inShape}] to [${spec}]`);
    out[out.indexOf(-1)] = n / known;
  }
  if (prod(out) !== n) throw new Error(`cannot reshape [${inShape}] (${n} elements) to [${spec}] → [${out}]`);
  return out;
}

function reshapeValue(c: Ctx, i: number, shape: number[]): Value {
  const v = c.value(i);
  if (v.kind === "host") return { ...v, shape };
  return arr(c.x(i).reshape(shape));
}

function transposeValue(v: Value, x: () => Array, perm: number[]): Value {
  if (v.kind === "host") {
    const st = strides(v.shape);
    return hostGen(v, perm.map((p) => v.shape[p]), (idx) => idx.reduce((f, d, a) => f + d * st[perm[a]], 0));
  }
  return arr(x().transpose(perm));
}

const Reshape: Op = (c) => reshapeValue(c, 0, reshapeTarget(c.shape(0), c.ints(1), c.int("allowzero", 0) === 1));

const Transpose: Op = (c) => {
  const rank = c.shape(0).length;
  const perm = c.intList("perm") ?? range(rank).reverse();
  return transposeValue(c.value(0), () => c.x(0), perm.map((p) => normAxis(p, rank)));
};

const Flatten: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 1), s.length);
  return reshapeValue(c, 0, [prod(s.slice(0, axis)), prod(s.slice(axis))]);
};

const Squeeze: Op = (c) => {
  const s = c.shape(0);
  const axes = (c.listFrom(1, "axes") ?? range(s.length).filter((a) => s[a] === 1)).map((a) => normAxis(a, s.length));
  for (const a of axes) if (s[a] !== 1) throw new Error(`cannot squeeze axis ${a} of extent ${s[a]}`);
  return reshapeValue(c, 0, s.filter((_, a) => !axes.includes(a)));
};

const Unsqueeze: Op = (c) => {
  const s = c.shape(0);
  const axesRaw = c.listFrom(1, "axes");
  if (!axesRaw) throw new Error("Unsqueeze without axes");
  const rank = s.length + axesRaw.length;
  const axes = axesRaw.map((a) => normAxis(a, rank));
  const out: number[] = [];
  let j = 0;
  for (let a = 0; a < rank; a++) out.push(axes.includes(a) ? 1 : s[j++]);
  return reshapeValue(c, 0, out);
};

const Concat: Op = (c) => {
  const present = range(c.node.inputs.length).filter((i) => c.has(i) && prod(c.shape(i)) > 0);
  const rank = c.shape(0).length;
  const axis = normAxis(c.int("axis", 0), rank);
  if (present.length === 0) return c.value(0);
  if (c.allHost()) {
    const parts = present.map((i) => c.host(i));
    const shape = [...parts[0].shape];
    shape[axis] = parts.reduce((s, p) => s + p.shape[axis], 0);
    const outer = prod(shape.slice(0, axis)), data: number[] = [];
    for (let o = 0; o < outer; o++) {
      for (const p of parts) {
        const chunk = prod(p.shape.slice(axis));
        for (let k = 0; k < chunk; k++) data.push(p.data[o * chunk + k]);
      }
    }
    return host(parts[0].dtype, shape, data);
  }
  if (present.length === 1) return arr(c.x(present[0]));
  return arr(np.concatenate(present.map((i) => c.x(i)), axis));
};

const Split: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 0), s.length);
  const n = c.node.outputs.length;
  let sizes = c.listFrom(1, "split");
  if (!sizes) {
    // Equal parts; with num_outputs (opset 18) the last may be smaller.
    const part = Math.ceil(s[axis] / n);
    sizes = range(n).map((i) => Math.min(part, s[axis] - i * part));
  }
  let at = 0;
  return sizes.map((size) => {
    const start = at;
    at += size;
    return sliceValue(c, 0, [axis], [start], [size], [1]);
  });
};

/** Slice of input i on `axes` (start, count, step ≥ 1 or < 0). */
function sliceValue(c: Ctx, i: number, axes: number[], starts: number[], counts: number[], steps: number[]): Value {
  const v = c.value(i);
  const shape = c.shape(i);
  if (v.kind === "host") {
    const st = strides(shape);
    const out = [...shape];
    axes.forEach((a, k) => (out[a] = counts[k]));
    return hostGen(v, out, (idx) => idx.reduce((f, d, a) => {
      const k = axes.indexOf(a);
      return f + (k < 0 ? d : starts[k] + d * steps[k]) * st[a];
    }, 0));
  }
  let x = c.x(i);
  axes.forEach((a, k) => {
    let start = starts[k], step = steps[k];
    if (step < 0) {
      // Reverse the axis, then slice forwards: element start − j·|step| is (dim−1−start) + j·|step| of the flipped axis.
      x = np.flip(x, a);
      start = shape[a] - 1 - start;
      step = -step;
    }
    x = sliceAxis(x, a, start, counts[k], step);
  });
  return arr(x);
}

const Slice: Op = (c) => {
  const s = c.shape(0);
  const old = c.opset < 10;
  const starts = old ? c.intList("starts")! : c.ints(1);
  const ends = old ? c.intList("ends")! : c.ints(2);
  const axes = ((old ? c.intList("axes") : c.has(3) ? c.ints(3) : undefined) ?? range(starts.length)).map((a) => normAxis(a, s.length));
  const steps = !old && c.has(4) ? c.ints(4) : starts.map(() => 1);
  const bounds = axes.map((a, k) => sliceBounds(s[a], starts[k], ends[k], steps[k]));
  return sliceValue(c, 0, axes, bounds.map((b) => b[0]), bounds.map((b) => b[1]), steps);
};

/** The largest extent a run-time-index Gather contracts one-hot (a vocabulary of class labels; beyond: jax-js's gather). */
const MAX_ONE_HOT = 1 << 16;

const Gather: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", 0), s.length);
  const iv = c.value(1);
  if (iv.kind !== "host") {
    // Indices known at run time only (a class label's embedding row): for float data, a one-hot
    // contraction — exact (one product by 1, the rest by 0), differentiable in the data, and made of
    // primitives lower.ts translates; otherwise jax-js's gather (not lowerable to ONNX).
    const idx = c.x(1);
    const fixed = np.where(np.less(idx.ref, 0), idx.ref.add(s[axis]), idx);
    if (c.dtype(0) !== "float32" || s[axis] > MAX_ONE_HOT) return arr(np.take(c.x(0), fixed, axis));
    const r = fixed.ndim;
    // [...idx, ...data without axis] → data's leading axes first; a class label the embedding does not
    // have gives NaN, and training stops as non-finite
    const picked = oneHotRows(np.moveaxis(c.x(0), axis, 0), fixed, s[axis]);
    const order = [...range(axis).map((a) => r + a), ...range(r), ...range(s.length - 1 - axis).map((a) => r + axis + a)];
    return arr(picked.transpose(order));
  }
  const idx = iv.data.map((i) => (i < 0 ? i + s[axis] : i));
  for (const i of idx) if (i < 0 || i >= s[axis]) throw new Error(`Gather index ${i} out of range for axis ${axis} of extent ${s[axis]}`);
  const outShape = [...s.slice(0, axis), ...iv.shape, ...s.slice(axis + 1)];
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s), r = iv.shape.length;
    return hostGen(v, outShape, (o) => {
      let f = 0;
      for (let a = 0; a < axis; a++) f += o[a] * st[a];
      const flat = r === 0 ? 0 : o.slice(axis, axis + r).reduce((g, d, k) => g * iv.shape[k] + d, 0);
      f += idx[flat] * st[axis];
      for (let a = axis + 1; a < s.length; a++) f += o[a + r - 1] * st[a];
      return f;
    });
  }
  // Constant indices: runs of consecutive indices become slices, concatenated along the axis.
  return arr(takeRows(c.x(0), axis, idx).reshape(outShape));
};

/** ScatterND's and GatherND's host indices as tuples over data's first k axes, negative ones counted from the end (out of range: an error). */
function indexTuples(iv: Host, ds: readonly number[], k: number): number[][] {
  return globalThis.Array.from({ length: iv.data.length / k }, (_, u) => globalThis.Array.from({ length: k }, (_, j) => {
    const i = iv.data[u * k + j], d = ds[j], w = i < 0 ? i + d : i;
    if (w < 0 || w >= d) throw new Error(`index ${i} is out of range for axis ${j} of extent ${d}`);
    return w;
  }));
}

/**
 * Whether index tuples run over every row of the leading (batch) axis of extent B alike — tuple
 * b·U1 + u1 is (b, rest of tuple u1) for every b — as torch's `:` on the batch gives: then they
 * can be applied per sample, the same for any batch.
 */
function sameForEverySample(index: readonly (readonly number[])[], B: number): boolean {
  const U1 = index.length / B;
  return (index[0]?.length ?? 0) > 1 && Number.isInteger(U1) && index.every((ix, u) => ix[0] === Math.floor(u / U1) && ix.every((w, j) => j === 0 || w === index[u % U1][j]));
}

/** Rows `rows` of x along `axis` (known on the host): runs of consecutive rows as slices, concatenated. */
function takeRows(x: Array, axis: number, rows: readonly number[]): Array {
  const pieces: Array[] = [];
  for (let k = 0; k < rows.length;) {
    let e = k + 1;
    while (e < rows.length && rows[e] === rows[e - 1] + 1) e++;
    pieces.push(sliceAxis(x.ref, axis, rows[k], e - k, 1));
    k = e;
  }
  x.dispose();
  return pieces.length === 1 ? pieces[0] : np.concatenate(pieces, axis);
}

/**
 * Rows of float data [V, ...] picked by indices known at run time (int32 of any shape, negative
 * ones already counted from the end) → [...indices, ...]: a one-hot contraction (exact,
 * differentiable in the data, lowerable); an index out of range gives NaN, as jax-js's take does,
 * not a silent row of zeros.
 */
function oneHotRows(data: Array, idx: Array, V: number): Array {
  const oneHot = np.equal(idx.ref.reshape([...idx.shape, 1]), np.arange(V).astype(np.int32)).astype(np.float32);
  const rest = data.shape.length - 1;
  const inRange = np.logicalAnd(np.greaterEqual(idx.ref, 0), np.less(idx, V)).reshape([...oneHot.shape.slice(0, -1), ...range(rest).map(() => 1)]);
  return np.where(inRange, np.tensordot(oneHot, data, [[oneHot.ndim - 1], [0]]), NaN);
}

/**
 * GatherElements (torch.gather): out[…, j, …] = data[…, indices[…, j, …], …] along `axis`, the
 * output shaped as the indices (on other axes at most data's extents). A one-hot product along the
 * axis, for indices known on the host or at run time: exact, differentiable in the data, lowerable.
 */
const GatherElements: Op = (c) => {
  const s = c.shape(0), is = c.shape(1), axis = normAxis(c.int("axis", 0), s.length), V = s[axis];
  if (is.length !== s.length) throw new Error(`indices have rank ${is.length}; data has rank ${s.length} (they must be equal)`);
  is.forEach((d, a) => { if (a !== axis && d > s[a]) throw new Error(`indices have extent ${d} on axis ${a}, beyond data's ${s[a]}`); });
  const iv = c.value(1), dv = c.value(0);
  if (iv.kind === "host") {
    for (const i of iv.data) if (i < -V || i >= V) throw new Error(`index ${i} is out of range for axis ${axis} of extent ${V}`);
    if (dv.kind === "host") {
      const st = strides(s), ist = strides(is);
      return hostGen(dv, is, (o) => {
        const i = iv.data[o.reduce((f, d, a) => f + d * ist[a], 0)];
        return o.reduce((f, d, a) => f + (a === axis ? (i < 0 ? i + V : i) : d) * st[a], 0);
      });
    }
  }
  if (c.dtype(0) !== "float32") throw new Error(`data of type ${c.dtype(0)} is not supported with indices computed in the graph (float data only)`);
  checkedSize([...is, V], MAX_HOST_ELEMENTS, "the one-hot selection");
  // data cut to the indices' extents on the other axes, the gathered axis moved last and a unit axis where it was
  const cut = c.x(0).slice(...s.map((d, a) => (a === axis ? [] : [0, is[a]])) as [number, number][]);
  const moved = np.moveaxis(cut, axis, -1).reshape([...is.map((d, a) => (a === axis ? 1 : d)), V]);
  const idx0 = iv.kind === "host" ? lift(host("int32", is, iv.data)) : c.x(1).astype(np.int32);
  const idx = np.where(np.less(idx0.ref, 0), idx0.ref.add(V), idx0);
  const oneHot = np.equal(idx.ref.reshape([...is, 1]), np.arange(V).astype(np.int32)).astype(np.float32);
  const inRange = np.logicalAnd(np.greaterEqual(idx.ref, 0), np.less(idx, V));
  return arr(np.where(inRange, oneHot.mul(moved).sum(-1), NaN));
};

/**
 * GatherND (batch_dims 0): out[u…] = data[indices[u…, 0], …, indices[u…, k−1], …]. Indices known
 * on the host become runs of row slices (per sample when they run over every batch row alike, so
 * that an export answers at any batch, as ScatterND's); indices known at run time, a one-hot
 * contraction over data's first k axes (float data).
 */
const GatherND: Op = (c) => {
  const ds = c.shape(0), is = c.shape(1), k = is[is.length - 1] ?? 0;
  if (c.int("batch_dims", 0) !== 0) throw new Error(`batch_dims ${c.int("batch_dims", 0)} is not supported (0 only)`);
  if (k < 1 || k > ds.length) throw new Error(`indices' last axis is ${k}; it must be from 1 to data's rank ${ds.length}`);
  const lead = is.slice(0, -1), rest = ds.slice(k), outShape = [...lead, ...rest], U = prod(lead), S = prod(rest), P = prod(ds.slice(0, k));
  const st = strides(ds.slice(0, k)), iv = c.value(1), dv = c.value(0);
  if (iv.kind === "host") {
    const index = indexTuples(iv, ds, k);
    const flat = index.map((ix) => ix.reduce((f, w, j) => f + w * st[j], 0));
    if (dv.kind === "host") return hostGen(dv, outShape, (o) => flat[o.slice(0, lead.length).reduce((f, d, a) => f * lead[a] + d, 0)] * S + o.slice(lead.length).reduce((f, d, a) => f * rest[a] + d, 0));
    const B = ds[0], U1 = U / B, perSample = sameForEverySample(index, B);
    if (perSample) {
      const rows = index.slice(0, U1).map((ix) => ix.slice(1).reduce((f, w, j) => f + w * st[j + 1], 0));
      return arr(takeRows(c.x(0).reshape([B, P / B, S]), 1, rows).reshape(outShape));
    }
    return arr(takeRows(c.x(0).reshape([P, S]), 0, flat).reshape(outShape));
  }
  if (c.dtype(0) !== "float32") throw new Error(`data of type ${c.dtype(0)} is not supported with indices computed in the graph (float data only)`);
  if (P > MAX_ONE_HOT) throw new Error(`indices computed in the graph into ${P} rows (at most ${MAX_ONE_HOT})`);
  // the flat row of each index tuple, each entry's negative values counted from its axis' end
  const idx = c.x(1).astype(np.int32).reshape([U, k]);
  const parts = range(k).map((j) => {
    const e = idx.ref.slice([], j);
    return np.where(np.less(e.ref, 0), e.ref.add(ds[j]), e);
  });
  idx.dispose();
  // an entry out of its own axis' range makes the row out of range (−1)
  const ok = parts.map((e, j) => np.logicalAnd(np.greaterEqual(e.ref, 0), np.less(e.ref, ds[j]))).reduce((a, b) => np.logicalAnd(a, b));
  const row = np.where(ok, parts.map((e, j) => e.mul(st[j])).reduce((a, b) => a.add(b)), -1);
  return arr(oneHotRows(c.x(0).reshape([P, S]), row, P).reshape(outShape));
};

/** ScatterND: more runs of rows than this (a scatter of single elements over a large tensor) is refused, not a graph of thousands of slices. */
const MAX_SCATTER_RUNS = 4096;

/**
 * ScatterND with indices known on the host (torch writes it for an in-place index assignment,
 * `x[:, 0] = y`, its indices built from shapes): data's rows over the first k axes, each either
 * kept or replaced by (reduction add / mul: combined with) an update row, assembled as
 * concatenated runs of slices — lowerable, and differentiable in data and updates. When the
 * indices run over every row of the leading (batch) axis alike, as torch's `:` on the batch
 * gives, the runs are cut along the second axis, the same for every sample, so that a file
 * traced at one batch size scatters correctly at another.
 */
const ScatterND: Op = (c) => {
  const ds = c.shape(0), iv = c.host(1), k = iv.shape[iv.shape.length - 1] ?? 0;
  const reduction = c.str("reduction", "none");
  if (!["none", "add", "mul"].includes(reduction)) throw new Error(`reduction "${reduction}" is not supported (none, add, mul)`);
  if (k < 1 || k > ds.length) throw new Error(`indices' last axis is ${k}; it must be from 1 to data's rank ${ds.length}`);
  const S = prod(ds.slice(k)), U = iv.data.length / k;
  const us = c.shape(2);
  if (prod(us) !== U * S) throw new Error(`updates have shape [${us}]; indices [${iv.shape}] into data [${ds}] need [${[...iv.shape.slice(0, -1), ...ds.slice(k)]}]`);
  const index = indexTuples(iv, ds, k);
  const dv = c.value(0), uv = c.value(2);
  if (dv.kind === "host" && uv.kind === "host") {
    const target = scatterTargets(index, ds.slice(0, k), reduction);
    const out = dv.data.slice();
    target.forEach((u, p) => {
      if (u < 0) return;
      for (let e = 0; e < S; e++) {
        const x = uv.data[u * S + e];
        out[p * S + e] = reduction === "add" ? out[p * S + e] + x : reduction === "mul" ? out[p * S + e] * x : x;
      }
    });
    return host(dv.dtype, ds, out);
  }
  // per sample: update u = b·U1 + u1 goes to (b, rest of index u1) for every b, the rest the same for every b
  const B = ds[0], U1 = U / B, perSample = sameForEverySample(index, B);
  const lead = perSample ? [B] : [], cut = lead.length; // the axis the runs are cut along
  const target = perSample ? scatterTargets(index.slice(0, U1).map((ix) => ix.slice(1)), ds.slice(1, k), reduction) : scatterTargets(index, ds.slice(0, k), reduction);
  const runs = scatterRuns(target);
  if (runs.length > MAX_SCATTER_RUNS) throw new Error(`the indices scatter ${runs.length} separate runs of rows (at most ${MAX_SCATTER_RUNS})`);
  const data = c.x(0).reshape([...lead, target.length, S]), updates = c.x(2).reshape([...lead, perSample ? U1 : U, S]);
  const rows = (a: Array, from: number, to: number) => (cut === 0 ? a.ref.slice([from, to]) : a.ref.slice([], [from, to]));
  const pieces = runs.map((r) => {
    if (r.from === "data") return rows(data, r.start, r.start + r.rows);
    const u = rows(updates, r.start, r.start + r.rows);
    if (reduction === "none") return u;
    const old = rows(data, r.at, r.at + r.rows);
    return reduction === "add" ? old.add(u) : old.mul(u);
  });
  data.dispose();
  updates.dispose();
  return arr((pieces.length === 1 ? pieces[0] : np.concatenate(pieces, cut)).reshape(ds));
};

/**
 * The update row each data row (over axes of extents `dims`, row-major) takes, −1 for none: the
 * last one wins, as onnxruntime does, for reduction none; add and mul refuse an index repeated.
 */
function scatterTargets(index: readonly (readonly number[])[], dims: readonly number[], reduction: string): number[] {
  const st = strides(dims), target = new globalThis.Array<number>(prod(dims)).fill(-1), count = new globalThis.Array<number>(target.length).fill(0);
  index.forEach((ix, u) => {
    const p = ix.reduce((acc, w, j) => acc + w * st[j], 0);
    target[p] = u;
    count[p]++;
  });
  if (reduction !== "none" && count.some((n) => n > 1)) throw new Error(`reduction "${reduction}" with an index repeated is not supported`);
  return target;
}

/** Consecutive data rows kept, or consecutive data rows taking consecutive update rows. */
function scatterRuns(target: readonly number[]): { from: "data" | "updates"; start: number; rows: number; at: number }[] {
  const runs: { from: "data" | "updates"; start: number; rows: number; at: number }[] = [];
  target.forEach((u, p) => {
    const last = runs[runs.length - 1];
    if (u < 0 && last?.from === "data") last.rows++;
    else if (u >= 0 && last?.from === "updates" && last.start + last.rows === u) last.rows++;
    else runs.push(u < 0 ? { from: "data", start: p, rows: 1, at: p } : { from: "updates", start: u, rows: 1, at: p });
  });
  return runs;
}

const Expand: Op = (c) => {
  const shape = broadcastShapes(c.shape(0), c.ints(1));
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(v.shape);
    return hostGen(v, shape, (idx) => broadcastIndex(v.shape, st, idx));
  }
  return arr(np.broadcastTo(c.x(0), shape));
};

const Tile: Op = (c) => {
  const reps = c.ints(1);
  const s = c.shape(0);
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s);
    return hostGen(v, s.map((d, a) => d * reps[a]), (idx) => idx.reduce((f, d, a) => f + (d % s[a]) * st[a], 0));
  }
  return arr(np.tile(c.x(0), reps));
};

// ---------------------------------------------------------------------------------------------
// Sources of constants

export function tensorValue(t: OnnxTensor): Host {
  return host(t.dtype, t.dims, t.data);
}

const Constant: Op = (c) => {
  const a = c.node.attributes;
  if (a.value?.t) return tensorValue(a.value.t);
  if (a.value_float) return host("float32", [], [a.value_float.f!]);
  if (a.value_floats) return host("float32", [a.value_floats.floats!.length], a.value_floats.floats!);
  if (a.value_int) return host("int64", [], [a.value_int.i!]);
  if (a.value_ints) return host("int64", [a.value_ints.ints!.length], a.value_ints.ints!);
  throw new Error("Constant without a supported value attribute");
};

const Shape: Op = (c) => {
  const s = c.shape(0);
  const r = s.length;
  const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
  const start = clamp(c.int("start", 0)), end = clamp(c.attr("end")?.i ?? r);
  const out = s.slice(start, Math.max(start, end));
  return host("int64", [out.length], out);
};

const Size: Op = (c) => host("int64", [], [prod(c.shape(0))]);

const ConstantOfShape: Op = (c) => {
  const shape = c.ints(0);
  const t = c.attr("value")?.t;
  const fill = t ? t.data[0] : 0;
  return host(t ? t.dtype : "float32", shape, new globalThis.Array(checkedSize(shape, MAX_HOST_ELEMENTS, "ConstantOfShape")).fill(fill));
};

const Range: Op = (c) => {
  const [start, limit, delta] = [0, 1, 2].map((i) => c.host(i).data[0]);
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  checkedSize([n], MAX_HOST_ELEMENTS, "Range");
  return host(c.dtype(0), [n], range(n).map((i) => start + i * delta));
};

const Identity: Op = (c) => c.value(0);

/** Dropout at inference: the identity, and an all-true mask when asked for. */
const Dropout: Op = (c) => {
  const out: Value[] = [c.value(0)];
  if (c.node.outputs.length > 1) out.push(host("bool", c.shape(0), new globalThis.Array(prod(c.shape(0))).fill(1)));
  return out;
};

/** x with the constant `m` [inLen, outLen] applied along `axis`: y[…, o, …] = Σ_i m[i, o]·x[…, i, …] (a matmul). */
export function alongAxis(x: Array, axis: number, m: Float32Array, outLen: number): Array {
  const rank = x.shape.length, inLen = x.shape[axis];
  const perm = [...range(rank).filter((a) => a !== axis), axis];
  const back = range(rank).map((a) => (a < axis ? a : a === axis ? rank - 1 : a - 1));
  const y = np.matmul(x.transpose(perm), np.array(m, { shape: [inLen, outLen] }));
  return y.transpose(back);
}

/** DepthToSpace: [N, C·b², H, W] → [N, C, H·b, W·b]; channels ordered depth-column-row (DCR) or column-row-depth (CRD). */
const DepthToSpace: Op = (c) => {
  const [N, C, H, W] = c.shape(0);
  const b = c.int("blocksize", 0);
  if (!(b > 0) || C % (b * b) !== 0) throw new Error(`blocksize ${b} does not divide the ${C} channels into b² blocks`);
  const D = C / (b * b);
  const y = c.str("mode", "DCR") === "CRD"
    ? c.x(0).reshape([N, D, b, b, H, W]).transpose([0, 1, 4, 2, 5, 3])
    : c.x(0).reshape([N, b, b, D, H, W]).transpose([0, 3, 4, 1, 5, 2]);
  return arr(y.reshape([N, D, H * b, W * b]));
};

/** SpaceToDepth: [N, C, H·b, W·b] → [N, C·b², H, W], the inverse of DepthToSpace in DCR order. */
const SpaceToDepth: Op = (c) => {
  const [N, C, H, W] = c.shape(0);
  const b = c.int("blocksize", 0);
  if (!(b > 0) || H % b !== 0 || W % b !== 0) throw new Error(`blocksize ${b} does not divide [${H}, ${W}]`);
  const y = c.x(0).reshape([N, C, H / b, b, W / b, b]).transpose([0, 3, 5, 1, 2, 4]);
  return arr(y.reshape([N, C * b * b, H / b, W / b]));
};

/** CumSum along a constant axis; exclusive (each sum without its own element) and reverse (from the end) attributes. */
const CumSum: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.ints(1)[0], s.length), n = s[axis];
  const exclusive = c.int("exclusive", 0) === 1, reverse = c.int("reverse", 0) === 1;
  // m[i, o] = 1 where input i is summed into output o.
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < n; o++) {
      const take = reverse ? (exclusive ? i > o : i >= o) : (exclusive ? i < o : i <= o);
      if (take) m[i * n + o] = 1;
    }
  }
  const v = c.value(0);
  if (v.kind === "host") {
    const st = strides(s);
    return host(v.dtype, s, range(prod(s)).map((f) => {
      const o = Math.floor(f / st[axis]) % n, base = f - o * st[axis];
      let t = 0;
      for (let i = 0; i < n; i++) if (m[i * n + o]) t += v.data[base + i * st[axis]];
      return t;
    }));
  }
  return arr(alongAxis(c.x(0), axis, m, n));
};

/** Trilu: the upper (upper = 1) or lower triangle of the last two axes, from diagonal k on; the rest 0. */
const Trilu: Op = (c) => {
  const s = c.shape(0), [R, C] = s.slice(-2);
  const k = c.has(1) ? c.ints(1)[0] : 0, upper = c.int("upper", 1) === 1;
  const keep = range(R * C).map((f) => {
    const d = (f % C) - Math.floor(f / C);
    return upper ? d >= k : d <= k;
  });
  const v = c.value(0);
  if (v.kind === "host") return hostMap(v.dtype, [v, host("bool", [R, C], keep.map(Number))], (x, m) => (m ? x : 0));
  return arr(np.where(lift(host("bool", [R, C], keep.map(Number))), c.x(0), 0));
};

export const SHAPE_OPS: Record<string, Op> = {
  Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat, Split, Slice, Gather, GatherElements, GatherND, ScatterND, Expand, Tile,
  Constant, Shape, Size, ConstantOfShape, Range, Identity, Dropout, DepthToSpace, SpaceToDepth, CumSum, Trilu,
};
