/** ONNX Resize and Upsample: nearest, linear and cubic resampling, one constant matrix (or a broadcast or strided slice) per axis. */
import { numpy as np, type Array } from "@jax-js/jax";
import { type Op, arr, checkedSize, normAxis, range } from "../values.ts";
import { alongAxis, sliceAxis } from "./shape.ts";

// ---------------------------------------------------------------------------------------------
// Resampling, pooling and rearranging (VAE decoders, upsampling blocks, pixel shuffles)

type Sampling = {
  readonly mode: string; // nearest | linear | cubic
  readonly coord: string; // coordinate_transformation_mode
  readonly nearest: string; // nearest_mode, or "simple" (Upsample, Resize-10)
  readonly cubicA: number;
  readonly excludeOutside: boolean;
};

/** ONNX Resize's map from an output coordinate to an input one, along an axis of inLen → outLen at `scale`. */
function sourceCoordinate(o: number, inLen: number, outLen: number, scale: number, coord: string): number {
  const f = Math.fround;
  switch (coord) {
    case "half_pixel": return f(f(o + 0.5) / scale) - 0.5;
    case "half_pixel_symmetric": {
      const adjustment = outLen / f(scale * inLen), centre = inLen / 2;
      return centre * (1 - adjustment) + f(o + 0.5) / scale - 0.5;
    }
    case "pytorch_half_pixel": return outLen > 1 ? f(f(o + 0.5) / scale) - 0.5 : 0;
    case "align_corners": return outLen === 1 ? 0 : f((o * (inLen - 1)) / (outLen - 1));
    case "asymmetric": return f(o / scale);
    case "tf_half_pixel_for_nn": return f(f(o + 0.5) / scale);
    default: throw new Error(`coordinate_transformation_mode "${coord}" is not supported`);
  }
}

function nearestIndex(x: number, mode: string, downsampling: boolean): number {
  const half = x - Math.floor(x) === 0.5;
  switch (mode) {
    case "round_prefer_floor": return half ? Math.floor(x) : Math.round(x);
    case "round_prefer_ceil": return half ? Math.ceil(x) : Math.round(x);
    case "floor": return Math.floor(x);
    case "ceil": return Math.ceil(x);
    case "simple": return downsampling ? Math.ceil(x) : Math.trunc(x); // what onnxruntime does before opset 11
    default: throw new Error(`nearest_mode "${mode}" is not supported`);
  }
}

/** Keys' cubic convolution weights of the taps at ⌊x⌋ − 1 … ⌊x⌋ + 2, for x − ⌊x⌋ = r (ONNX's coefficient a). */
function cubicWeights(r: number, a: number): number[] {
  const far = (d: number) => ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; // 1 ≤ |d| ≤ 2
  const near = (d: number) => ((a + 2) * d - (a + 3)) * d * d + 1; // |d| ≤ 1
  return [far(r + 1), near(r), near(1 - r), far(2 - r)];
}

/** Nearest-neighbour resampling of one axis: the input index each output reads (clamped to the axis). */
function nearestIndices(inLen: number, outLen: number, scale: number, s: Sampling): number[] {
  return range(outLen).map((o) => Math.min(Math.max(nearestIndex(sourceCoordinate(o, inLen, outLen, scale, s.coord), s.nearest, scale < 1), 0), inLen - 1));
}

/**
 * Linear or cubic resampling of one axis as a [inLen, outLen] matrix: column o holds the weights of
 * the input elements output o reads. Taps outside the axis read its edge element (or, with
 * exclude_outside, get weight 0 and the rest is renormalised), as ONNX specifies.
 */
function samplingMatrix(inLen: number, outLen: number, scale: number, s: Sampling): Float32Array {
  const m = new Float32Array(inLen * outLen);
  const edge = (i: number) => Math.min(Math.max(i, 0), inLen - 1);
  for (let o = 0; o < outLen; o++) {
    const x = sourceCoordinate(o, inLen, outLen, scale, s.coord);
    const i0 = Math.floor(x), r = x - i0;
    const taps: [number, number][] = s.mode === "linear" ? [[i0, 1 - r], [i0 + 1, r]]
      : cubicWeights(r, s.cubicA).map((w, k) => [i0 - 1 + k, w]);
    const kept = s.excludeOutside ? taps.filter(([i]) => i >= 0 && i < inLen) : taps;
    const total = s.excludeOutside ? kept.reduce((t, [, w]) => t + w, 0) : 1;
    for (const [i, w] of kept) m[edge(i) * outLen + o] += w / total;
  }
  return m;
}

/** The [inLen, outLen] matrix that selects input idx[o] for output o. */
function selectionMatrix(idx: readonly number[], inLen: number): Float32Array {
  const m = new Float32Array(inLen * idx.length);
  idx.forEach((i, o) => (m[i * idx.length + o] = 1));
  return m;
}

const isIdentity = (m: Float32Array, n: number) => m.every((v, k) => v === (k % (n + 1) === 0 ? 1 : 0));

/**
 * A nearest-neighbour selection of a regular form, done without the matmul: every step-th element
 * from `start` (downsampling: a strided slice) or each element of a run r times (integer
 * upsampling: a broadcast). Undefined for any other pattern.
 */
function regularSelection(idx: number[]): ((x: Array, axis: number) => Array) | undefined {
  const n = idx.length, start = idx[0], step = n > 1 ? idx[1] - idx[0] : 1;
  if (step >= 1 && idx.every((i, o) => i === start + o * step)) return (x, axis) => sliceAxis(x, axis, start, n, step);
  let r = 1;
  while (r < n && idx[r] === start) r++;
  if (n % r !== 0 || !idx.every((i, o) => i === start + Math.floor(o / r))) return undefined;
  return (x, axis) => {
    const runs = sliceAxis(x, axis, start, n / r, 1), shp = [...runs.shape];
    const one = [...shp.slice(0, axis + 1), 1, ...shp.slice(axis + 1)], up = [...shp.slice(0, axis + 1), r, ...shp.slice(axis + 1)];
    return np.broadcastTo(runs.reshape(one), up).reshape([...shp.slice(0, axis), shp[axis] * r, ...shp.slice(axis + 1)]);
  };
}

/**
 * Resize (opsets 10–19) and Upsample (7–9): nearest, linear and cubic sampling of any axes, each
 * axis a matmul by its constant sampling matrix (differentiable; lowerable), or, for a regular
 * nearest-neighbour pattern (integer up- or downsampling), a broadcast or a strided slice.
 * Output extents from `sizes`, or ⌊extent·scale⌋ from `scales`. Not supported: tf_crop_and_resize
 * and antialiased downsampling (one-line errors).
 */
function resizeOp(upsample: boolean): Op {
  return (c) => {
    const shape = c.shape(0), rank = shape.length;
    const legacy = upsample || c.opset < 11;
    const present = (i: number) => c.has(i) && c.host(i).data.length > 0;
    let mode = c.str("mode", "nearest");
    if (mode === "bilinear" || mode === "trilinear") mode = "linear";
    if (!["nearest", "linear", "cubic"].includes(mode) || (legacy && mode === "cubic")) throw new Error(`mode "${mode}" is not supported`);
    const s: Sampling = {
      mode,
      coord: legacy ? "asymmetric" : c.str("coordinate_transformation_mode", "half_pixel"),
      nearest: legacy ? "simple" : c.str("nearest_mode", "round_prefer_floor"),
      cubicA: c.float("cubic_coeff_a", -0.75),
      excludeOutside: c.int("exclude_outside", 0) === 1,
    };
    if (s.coord === "tf_crop_and_resize") throw new Error(`coordinate_transformation_mode "tf_crop_and_resize" is not supported`);
    const axes = (c.intList("axes") ?? range(rank)).map((a) => normAxis(a, rank));
    const scales = shape.map(() => 1), sizes = [...shape];
    if (!legacy && present(3)) {
      // Target sizes; keep_aspect_ratio_policy (opset 18) may turn them into one scale for all the axes.
      const want = c.ints(3), policy = c.str("keep_aspect_ratio_policy", "stretch");
      if (want.length !== axes.length) throw new Error(`sizes has ${want.length} entries for ${axes.length} axes`);
      if (policy === "stretch") axes.forEach((a, k) => { sizes[a] = want[k]; scales[a] = want[k] / shape[a]; });
      else {
        const ratios = axes.map((a, k) => want[k] / shape[a]);
        const r = policy === "not_larger" ? Math.min(...ratios) : policy === "not_smaller" ? Math.max(...ratios) : NaN;
        if (Number.isNaN(r)) throw new Error(`keep_aspect_ratio_policy "${policy}" is not supported`);
        axes.forEach((a) => { scales[a] = r; sizes[a] = Math.floor(r * shape[a] + 0.5); });
      }
    } else {
      const given = upsample && c.opset < 9 ? c.attr("scales")?.floats : present(legacy ? 1 : 2) ? c.host(legacy ? 1 : 2).data : undefined;
      if (!given) throw new Error("neither scales nor sizes is given");
      if (given.length !== axes.length) throw new Error(`scales has ${given.length} entries for ${axes.length} axes`);
      axes.forEach((a, k) => {
        if (!(given[k] > 0)) throw new Error(`scale ${given[k]} of axis ${a} is not positive`);
        scales[a] = Math.fround(given[k]);
        sizes[a] = Math.floor(Math.fround(shape[a] * scales[a])); // in float32, as onnxruntime: 5 · 1.8 is 9
      });
    }
    if (c.int("antialias", 0) === 1 && mode !== "nearest" && scales.some((r) => r < 1)) {
      throw new Error("antialiased downsampling (antialias = 1 with a scale below 1) is not supported");
    }
    let x = c.x(0);
    for (let a = 0; a < rank; a++) {
      if (sizes[a] < 1) throw new Error(`axis ${a} would be resized to ${sizes[a]} elements`);
      checkedSize([shape[a], sizes[a]], 1 << 26, `the sampling matrix of axis ${a}`); // a host Float32Array: ≤ 256 MB
      if (mode === "nearest") {
        const idx = nearestIndices(shape[a], sizes[a], scales[a], s);
        if (idx.length === shape[a] && idx.every((i, o) => i === o)) continue;
        const regular = regularSelection(idx);
        x = regular ? regular(x, a) : alongAxis(x, a, selectionMatrix(idx, shape[a]), sizes[a]);
        continue;
      }
      const m = samplingMatrix(shape[a], sizes[a], scales[a], s);
      if (sizes[a] === shape[a] && isIdentity(m, shape[a])) continue;
      x = alongAxis(x, a, m, sizes[a]);
    }
    return arr(x);
  };
}

export const RESAMPLE_OPS: Record<string, Op> = { Resize: resizeOp(false), Upsample: resizeOp(true) };
