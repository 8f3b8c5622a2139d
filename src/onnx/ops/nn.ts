/** ONNX network layers: normalisations, Pad, convolutions (jax-js's conv primitive) and pooling (window slices). */
import { numpy as np, lax, type Array } from "@jax-js/jax";
import { Ctx, type Op, type Value, arr, normAxis, prod, range } from "../values.ts";
import { sliceAxis } from "./shape.ts";

/** (x − mean)/√(var + ε) over `axes` (biased variance); also returns mean and 1/√(var + ε). */
function normalize(x: Array, axes: number[], eps: number): [Array, Array, Array] {
  const mean = np.mean(x.ref, axes, { keepdims: true });
  const centred = x.sub(mean.ref);
  const variance = np.mean(centred.ref.mul(centred.ref), axes, { keepdims: true });
  const inv = np.reciprocal(np.sqrt(variance.add(eps)));
  return [centred.mul(inv.ref), mean, inv];
}

/** LayerNormalization (opset 17): normalise over axes axis…rank−1, then ·Scale + B; optional outputs Mean, InvStdDev. */
const LayerNormalization: Op = (c) => {
  const s = c.shape(0);
  const axis = normAxis(c.int("axis", -1), s.length);
  const [y0, mean, inv] = normalize(c.x(0), range(s.length).slice(axis), c.float("epsilon", 1e-5));
  let y = y0.mul(c.x(1));
  if (c.has(2)) y = y.add(c.x(2));
  const outs: Value[] = [arr(y)];
  if (c.node.outputs.length > 1) outs.push(arr(mean));
  else mean.dispose();
  if (c.node.outputs.length > 2) outs.push(arr(inv));
  else inv.dispose();
  return outs;
};

/** RMSNormalization (opset 23): x / √(mean of x² over axes axis…rank−1 + ε) · scale. */
const RMSNormalization: Op = (c) => {
  const s = c.shape(0);
  const axes = range(s.length).slice(normAxis(c.int("axis", -1), s.length));
  const x = c.x(0);
  const ms = np.mean(x.ref.mul(x.ref), axes, { keepdims: true });
  return arr(x.mul(np.reciprocal(np.sqrt(ms.add(c.float("epsilon", 1e-5))))).mul(c.x(1)));
};

/** LpNormalization: x / ‖x‖_p along `axis` (−1), p 1 or 2. */
const LpNormalization: Op = (c) => {
  const s = c.shape(0), axis = normAxis(c.int("axis", -1), s.length), p = c.int("p", 2);
  const x = c.x(0);
  if (p !== 1 && p !== 2) throw new Error(`LpNormalization: p ${p} (1 or 2 are defined)`);
  const norm = p === 1 ? np.sum(np.abs(x.ref), [axis], { keepdims: true }) : np.sqrt(np.sum(x.ref.mul(x.ref), [axis], { keepdims: true }));
  return arr(x.div(norm));
};

/** MeanVarianceNormalization: (x − mean)/√(var + 1e−9) over `axes` ([0, 2, 3]), the biased variance. */
const MeanVarianceNormalization: Op = (c) => {
  const s = c.shape(0);
  const axes = (c.intList("axes") ?? [0, 2, 3]).map((a) => normAxis(a, s.length));
  const [y, mean, inv] = normalize(c.x(0), axes, 1e-9);
  mean.dispose(); inv.dispose();
  return arr(y);
};

/** Per-channel [C] vector as [1, C, 1, …] for an NC… tensor of rank `rank`. */
const channelShape = (C: number, rank: number) => [1, C, ...range(rank - 2).map(() => 1)];

/** InstanceNormalization: per sample and channel over the spatial axes, then ·scale[C] + B[C]. */
const InstanceNormalization: Op = (c) => {
  const s = c.shape(0);
  const [y, mean, inv] = normalize(c.x(0), range(s.length).slice(2), c.float("epsilon", 1e-5));
  mean.dispose(); inv.dispose();
  const cs = channelShape(s[1], s.length);
  return arr(y.mul(c.x(1).reshape(cs)).add(c.x(2).reshape(cs)));
};

/**
 * GroupNormalization: channels in `num_groups` groups, each normalised over its channels and the
 * spatial axes; scale and bias per channel (opset 21) or per group (opset 18, repeated over the group's channels).
 */
const GroupNormalization: Op = (c) => {
  const s = c.shape(0);
  const G = c.int("num_groups", 1), C = s[1];
  const grouped = c.x(0).reshape([s[0], G, C / G, ...s.slice(2)]);
  const [y0, mean, inv] = normalize(grouped, range(s.length + 1).slice(2), c.float("epsilon", 1e-5));
  mean.dispose(); inv.dispose();
  const y = y0.reshape(s);
  const perChannel = (i: number) => {
    const v = c.x(i);
    const n = v.shape[0];
    const full = n === C ? v : np.broadcastTo(v.reshape([G, 1]), [G, C / G]).reshape([C]);
    return full.reshape(channelShape(C, s.length));
  };
  return arr(y.mul(perChannel(1)).add(perChannel(2)));
};

/** BatchNormalization at inference: (x − mean)/√(var + ε)·scale + B, all [C]. */
const BatchNormalization: Op = (c) => {
  const s = c.shape(0);
  const cs = channelShape(s[1], s.length);
  const inv = np.reciprocal(np.sqrt(c.x(4).add(c.float("epsilon", 1e-5)))).mul(c.x(1)).reshape(cs);
  return arr(c.x(0).sub(c.x(3).reshape(cs)).mul(inv).add(c.x(2).reshape(cs)));
};

/** Pad (opset ≥ 11, mode "constant"): pads = [begin…, end…] on `axes` (default all); negative pads crop. */
const Pad: Op = (c) => {
  const s = c.shape(0);
  const mode = c.str("mode", "constant");
  if (mode !== "constant") throw new Error(`Pad mode "${mode}" is not supported (only "constant")`);
  const pads = c.opset < 11 ? c.intList("pads")! : c.ints(1);
  const value = c.opset < 11 ? c.float("value", 0) : c.has(2) ? c.host(2).data[0] : 0;
  const axes = (c.has(3) ? c.ints(3) : range(s.length)).map((a) => normAxis(a, s.length));
  const n = axes.length;
  const widths = s.map(() => [0, 0] as [number, number]);
  axes.forEach((a, k) => (widths[a] = [pads[k], pads[k + n]]));
  // Crop negative pads first, then pad (x − value) with zeros and add value back: a constant pad.
  let x = c.x(0);
  widths.forEach(([lo, hi], a) => {
    if (lo < 0 || hi < 0) {
      const start = Math.max(0, -lo), end = x.shape[a] - Math.max(0, -hi);
      x = sliceAxis(x, a, start, end - start, 1);
    }
  });
  const pos = widths.map(([lo, hi]) => [Math.max(lo, 0), Math.max(hi, 0)] as [number, number]);
  if (value !== 0) x = x.sub(value);
  x = np.pad(x, pos);
  return arr(value !== 0 ? x.add(value) : x);
};

// ---------------------------------------------------------------------------------------------
// Convolutions

/** Conv / ConvTranspose attributes resolved against the spatial extents. */
function convPads(c: Ctx, spatial: number[], kernel: number[], strides: number[], dil: number[]): [number[], number[]] {
  const autoPad = c.str("auto_pad", "NOTSET");
  const n = spatial.length;
  if (autoPad === "NOTSET") {
    const pads = c.intList("pads") ?? range(2 * n).map(() => 0);
    return [pads.slice(0, n), pads.slice(n)];
  }
  if (autoPad === "VALID") return [range(n).map(() => 0), range(n).map(() => 0)];
  // SAME_UPPER / SAME_LOWER: output = ceil(input / stride), the odd pad at the end (UPPER) or start.
  const total = spatial.map((d, i) => Math.max(0, (Math.ceil(d / strides[i]) - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - d));
  const small = total.map((t) => Math.floor(t / 2)), big = total.map((t, i) => t - small[i]);
  return autoPad === "SAME_UPPER" ? [small, big] : [big, small];
}

/**
 * The taps of every sliding window over the spatial axes of x [N, C, …] (consumed): one strided
 * slice [N, C, …out] per kernel offset, in row-major kernel order. Conv and the pools are built on it.
 */
function windowTaps(x: Array, kernel: readonly number[], strides: readonly number[], dil: readonly number[], out: readonly number[]): Array[] {
  const n = kernel.length, taps: Array[] = [];
  for (let f = 0; f < prod(kernel); f++) {
    let win = x.ref, rest = f;
    for (let d = n - 1; d >= 0; d--) {
      const kd = rest % kernel[d];
      rest = Math.floor(rest / kernel[d]);
      win = sliceAxis(win, 2 + d, kd * dil[d], out[d], strides[d]);
    }
    taps.push(win);
  }
  x.dispose();
  return taps;
}

/**
 * Grouped N-d convolution: x [N, C, …], w [M, C/G, …k] → [N, M, …out]; pads may be negative
 * (crop). For the ONNX Runtime executor (`c.target` "onnx"), jax-js's conv primitive
 * (lax.convGeneralDilated), which lower.ts turns into one ONNX Conv and whose JVP and transposes
 * are convs again (3–4× the im2col form's speed forward, 1.6× with the gradient: RESULTS §41). For
 * jax-js's own backend ("jax"), im2col: that backend's conv primitive is ~20× slower than a matmul.
 */
function convCore(c: Ctx, x: Array, w: Array, groups: number, strides: number[], dil: number[], padsLo: number[], padsHi: number[]): Array {
  const [N, C, ...sp] = x.shape;
  const [M, Cg, ...k] = w.shape;
  const n = sp.length;
  if (Cg * groups !== C) throw new Error(`Conv: weight [${w.shape}] with group ${groups} does not fit input channels ${C}`);
  for (let d = 0; d < n; d++) {
    if (padsLo[d] < 0 || padsHi[d] < 0) {
      const start = Math.max(0, -padsLo[d]), end = x.shape[2 + d] - Math.max(0, -padsHi[d]);
      x = sliceAxis(x, 2 + d, start, end - start, 1);
    }
  }
  const pads = range(n).map((d) => [Math.max(padsLo[d], 0), Math.max(padsHi[d], 0)] as [number, number]);
  const out = range(n).map((d) => Math.floor((x.shape[2 + d] + pads[d][0] + pads[d][1] - dil[d] * (k[d] - 1) - 1) / strides[d]) + 1);
  if (out.some((o) => o <= 0)) throw new Error(`Conv: output extent [${out}] is empty`);
  if (c.target === "onnx") return lax.convGeneralDilated(x, w, strides, pads, { rhsDilation: dil, featureGroupCount: groups });
  // im2col, channels first [C, N, …] (moved once): each window flattens to [C, N·P] where it lies,
  // the columns are the matmul's right operand as they are, and only the output is transposed back
  const spatial = range(n).map((d) => 2 + d);
  x = x.transpose([1, 0, ...spatial]);
  if (pads.some(([lo, hi]) => lo > 0 || hi > 0)) x = np.pad(x, [[0, 0], [0, 0], ...pads]);
  const K = prod(k), P = prod(out);
  const windows = windowTaps(x, k, strides, dil, out).map((win) => win.reshape([C, 1, N * P]));
  const cols = (K === 1 ? windows[0] : np.concatenate(windows, 1)).reshape([groups, Cg * K, N * P]);
  const wm = w.reshape([groups, M / groups, Cg * K]);
  return np.matmul(wm, cols).reshape([M, N, ...out]).transpose([1, 0, ...spatial]);
}

/** Conv: x [N, C, …], W [M, C/group, …k], optional B [M]; pads, strides, dilations, group, auto_pad. */
const Conv: Op = (c) => {
  const s = c.shape(0), ws = c.shape(1);
  const n = s.length - 2;
  const kernel = c.intList("kernel_shape") ?? ws.slice(2);
  const strides = c.intList("strides") ?? range(n).map(() => 1);
  const dil = c.intList("dilations") ?? range(n).map(() => 1);
  const [lo, hi] = convPads(c, s.slice(2), kernel, strides, dil);
  let y = convCore(c, c.x(0), c.x(1), c.int("group", 1), strides, dil, lo, hi);
  if (c.has(2)) y = y.add(c.x(2).reshape(channelShape(ws[0], s.length)));
  return arr(y);
};

/**
 * ConvTranspose: the adjoint of a strided conv. x [N, C, …], W [C, M/group, …k]. Written as a
 * stride-1 conv of x with zeros inserted between its elements (stride − 1 of them), padded by
 * dilation·(k − 1) − pad (end: + output_padding), with the kernel flipped and its in/out
 * channels swapped per group. output_shape is honoured through the pads it implies.
 */
const ConvTranspose: Op = (c) => {
  const s = c.shape(0), ws = c.shape(1);
  const n = s.length - 2, G = c.int("group", 1);
  const [N, C, ...sp] = s;
  const [, Mg, ...k] = ws;
  const strides = c.intList("strides") ?? range(n).map(() => 1);
  const dil = c.intList("dilations") ?? range(n).map(() => 1);
  const outPad = c.intList("output_padding") ?? range(n).map(() => 0);
  let padsLo: number[], padsHi: number[];
  const outputShape = c.intList("output_shape");
  const autoPad = c.str("auto_pad", "NOTSET");
  if (outputShape || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    const target = outputShape ? outputShape.slice(-n) : sp.map((d, i) => d * strides[i]);
    const total = range(n).map((i) => strides[i] * (sp[i] - 1) + outPad[i] + (k[i] - 1) * dil[i] + 1 - target[i]);
    const half = total.map((t) => Math.floor(t / 2));
    [padsLo, padsHi] = autoPad === "SAME_UPPER" ? [half, total.map((t, i) => t - half[i])] : [total.map((t, i) => t - half[i]), half];
  } else {
    const pads = c.intList("pads") ?? range(2 * n).map(() => 0);
    [padsLo, padsHi] = [pads.slice(0, n), pads.slice(n)];
  }
  // Zero insertion: [N, C, I] → [N, C, I, stride] (zeros after each element) → [N, C, I·stride] → first (I−1)·stride + 1.
  let x = c.x(0);
  for (let d = 0; d < n; d++) {
    const st = strides[d];
    if (st === 1) continue;
    const ax = 2 + d, shp = x.shape;
    x = x.reshape([...shp.slice(0, ax + 1), 1, ...shp.slice(ax + 1)]);
    x = np.pad(x, x.shape.map((_, a) => (a === ax + 1 ? [0, st - 1] : [0, 0])) as [number, number][]);
    x = x.reshape([...shp.slice(0, ax), shp[ax] * st, ...shp.slice(ax + 1)]);
    x = sliceAxis(x, ax, 0, (shp[ax] - 1) * st + 1, 1);
  }
  // W [C, Mg, k] = [G, Cg, Mg, k] → [G, Mg, Cg, k] → [M, Cg, k], flipped spatially.
  const Cg = C / G;
  let w = c.x(1).reshape([G, Cg, Mg, ...k]).transpose([0, 2, 1, ...range(n).map((d) => 3 + d)]).reshape([G * Mg, Cg, ...k]);
  w = np.flip(w, range(n).map((d) => 2 + d));
  const lo = range(n).map((d) => dil[d] * (k[d] - 1) - padsLo[d]);
  const hi = range(n).map((d) => dil[d] * (k[d] - 1) - padsHi[d] + outPad[d]);
  let y = convCore(c, x, w, G, range(n).map(() => 1), dil, lo, hi);
  if (c.has(2)) y = y.add(c.x(2).reshape(channelShape(G * Mg, s.length)));
  void N;
  return arr(y);
};

/** Per spatial axis, how many of each output's window taps fall inside the input (for count_include_pad = 0). */
function validTaps(inLen: number, outLen: number, k: number, stride: number, dil: number, lo: number): number[] {
  return range(outLen).map((o) => range(k).filter((j) => {
    const i = o * stride - lo + j * dil;
    return i >= 0 && i < inLen;
  }).length);
}

/**
 * AveragePool / MaxPool: the window taps of the padded input (as in Conv), then
 * their mean or maximum. MaxPool pads with the lowest float, added to a zero pad so that the
 * input's values stay exact. ceil_mode and MaxPool's Indices output are not supported.
 */
function poolOp(kind: "average" | "max"): Op {
  return (c) => {
    const s = c.shape(0), n = s.length - 2;
    const kernel = c.intList("kernel_shape");
    if (!kernel || kernel.length !== n) throw new Error(`kernel_shape must give ${n} extents`);
    if (c.int("ceil_mode", 0) !== 0) throw new Error("ceil_mode 1 is not supported");
    if (c.node.outputs.length > 1 && c.node.outputs[1]) throw new Error("the Indices output is not supported");
    const strides = c.intList("strides") ?? range(n).map(() => 1);
    const dil = c.intList("dilations") ?? range(n).map(() => 1);
    const [lo, hi] = convPads(c, s.slice(2), kernel, strides, dil);
    const padded = s.slice(2).map((d, i) => d + lo[i] + hi[i]);
    const out = range(n).map((i) => Math.floor((padded[i] - dil[i] * (kernel[i] - 1) - 1) / strides[i]) + 1);
    if (out.some((o) => o <= 0)) throw new Error(`output extent [${out}] is empty`);
    let x = c.x(0);
    const widths = [[0, 0], [0, 0], ...range(n).map((i) => [lo[i], hi[i]])] as [number, number][];
    if (lo.some((p) => p > 0) || hi.some((p) => p > 0)) {
      x = np.pad(x, widths);
      if (kind === "max") {
        const inside = np.pad(np.ones([1, 1, ...s.slice(2)]), widths.map((w, a) => (a < 2 ? [0, 0] : w)) as [number, number][]);
        x = x.add(np.equal(inside, 0).astype(np.float32).mul(-3.4028234663852886e38));
      }
    }
    const K = prod(kernel);
    const acc = windowTaps(x, kernel, strides, dil, out).reduce((a, win) => (kind === "max" ? np.maximum(a, win) : a.add(win)));
    if (kind === "max") return arr(acc);
    if (c.int("count_include_pad", 0) === 1) return arr(acc.mul(1 / K));
    // The mean over the taps inside the input: a constant count per output position.
    const counts = range(n).map((i) => validTaps(s[2 + i], out[i], kernel[i], strides[i], dil[i], lo[i]));
    const total = new Float32Array(prod(out)).map((_, f) => {
      let p = 1, rest = f;
      for (let d = n - 1; d >= 0; d--) { p *= counts[d][rest % out[d]]; rest = Math.floor(rest / out[d]); }
      return 1 / p;
    });
    return arr(acc.mul(np.array(total, { shape: [1, 1, ...out] })));
  };
}

const GlobalAveragePool: Op = (c) => arr(np.mean(c.x(0), range(c.shape(0).length).slice(2), { keepdims: true }));
const GlobalMaxPool: Op = (c) => arr(np.max(c.x(0), range(c.shape(0).length).slice(2), { keepdims: true }));

export const NN_OPS: Record<string, Op> = {
  LayerNormalization, RMSNormalization, InstanceNormalization, GroupNormalization, BatchNormalization, LpNormalization, MeanVarianceNormalization, Pad,
  Conv, ConvTranspose, AveragePool: poolOp("average"), MaxPool: poolOp("max"), GlobalAveragePool, GlobalMaxPool,
};
