/** ONNX products and reductions: MatMul, Gemm, Einsum, the Reduce* ops, Softmax and LogSoftmax. */
import { numpy as np, nn, type Array } from "@jax-js/jax";
import { Ctx, type Op, arr, normAxis, prod, range } from "../values.ts";

/** MatMul: numpy matmul semantics (batched, broadcast; 1-D operands promoted). */
const MatMul: Op = (c) => arr(np.matmul(c.x(0), c.x(1)));

/** Gemm: alpha·A'·B' + beta·C, A' = Aᵀ if transA, B' = Bᵀ if transB, C broadcast. */
const Gemm: Op = (c) => {
  let a = c.x(0), b = c.x(1);
  if (c.int("transA", 0)) a = a.transpose([1, 0]);
  if (c.int("transB", 0)) b = b.transpose([1, 0]);
  let y = np.matmul(a, b);
  const alpha = c.float("alpha", 1), beta = c.float("beta", 1);
  if (alpha !== 1) y = y.mul(alpha);
  if (c.has(2) && beta !== 0) y = y.add(beta === 1 ? c.x(2) : c.x(2).mul(beta));
  return arr(y);
};

function reduceAxes(c: Ctx, rank: number): number[] | null {
  // Axes: the second input from opset 13 (ReduceSum) / 18 (others), else the attribute. None: all axes.
  const axes = c.has(1) ? c.ints(1) : c.intList("axes");
  if (axes === undefined || axes.length === 0) return c.int("noop_with_empty_axes", 0) ? null : range(rank);
  return axes.map((a) => normAxis(a, rank));
}

type Reduction = "sum" | "mean" | "max" | "min" | "prod" | "sumsquare" | "l2" | "l1" | "logsum" | "logsumexp";

function reduceOp(kind: Reduction): Op {
  return (c) => {
    const s = c.shape(0);
    const axes = reduceAxes(c, s.length);
    const keepdims = c.int("keepdims", 1) === 1;
    if (axes === null) return c.value(0);
    let x = c.x(0);
    if (kind === "sumsquare" || kind === "l2") x = x.ref.mul(x);
    if (kind === "l1") x = np.abs(x);
    const opts = { keepdims };
    let y: Array;
    switch (kind) {
      case "mean": y = np.mean(x, axes, opts); break;
      case "max": y = np.max(x, axes, opts); break;
      case "min": y = np.min(x, axes, opts); break;
      case "prod": y = np.prod(x, axes, opts); break;
      case "logsumexp": y = nn.logsumexp(x, axes, opts); break;
      default: y = np.sum(x, axes, opts);
    }
    return arr(kind === "l2" ? np.sqrt(y) : kind === "logsum" ? np.log(y) : y);
  };
}

/** Softmax / LogSoftmax: opset ≥ 13 along `axis` (default −1); before, over the axes from `axis` on (default 1), flattened. */
function softmaxOp(log: boolean): Op {
  return (c) => {
    const s = c.shape(0);
    const f = (x: Array, a: number) => (log ? nn.logSoftmax(x, a) : nn.softmax(x, a));
    if (c.opset >= 13) return arr(f(c.x(0), normAxis(c.int("axis", -1), s.length)));
    const axis = normAxis(c.int("axis", 1), s.length);
    const flat = c.x(0).reshape([prod(s.slice(0, axis)), prod(s.slice(axis))]);
    return arr(f(flat, 1).reshape(s));
  };
}

type Labelled = { a: Array; l: string[] };

/**
 * Einsum in numpy's notation (spaces ignored; "..." and an implicit output allowed): labels in one
 * operand only are summed out first, then the operands are multiplied pairwise as one batched
 * matmul each — [shared and still needed, left only, contracted] × [shared, contracted, right
 * only] — and the result is transposed to the output's order. A label repeated within one
 * operand (a diagonal) is not supported.
 */
const Einsum: Op = (c) => {
  const eq = c.str("equation", "").replace(/\s+/g, "");
  const [lhs, rhs] = eq.split("->");
  const terms = lhs.split(",");
  const n = c.node.inputs.length;
  if (terms.length !== n) throw new Error(`equation "${eq}" has ${terms.length} operands, the node ${n}`);
  // "..." stands for the leading axes not labelled, right-aligned across operands (private labels).
  const free = (t: string) => t.replace("...", "").length;
  const ellRank = Math.max(0, ...terms.map((t, i) => (t.includes("...") ? c.shape(i).length - free(t) : 0)));
  const ell = range(ellRank).map((k) => String.fromCharCode(0x100 + k));
  const labelsOf = (t: string, rank: number): string[] => {
    if (!t.includes("...")) return [...t];
    const [pre, post] = t.split("...");
    return [...pre, ...ell.slice(ellRank - (rank - free(t))), ...post];
  };
  const size = new Map<string, number>();
  const ops: Labelled[] = terms.map((t, i) => {
    const shape = c.shape(i), l = labelsOf(t, shape.length);
    if (l.length !== shape.length) throw new Error(`operand ${i} has rank ${shape.length}, "${t}" labels ${l.length} axes`);
    if (new Set(l).size !== l.length) throw new Error(`a label repeated within operand "${t}" (a diagonal) is not supported`);
    l.forEach((x, a) => {
      const was = size.get(x) ?? 1;
      if (was !== 1 && shape[a] !== 1 && shape[a] !== was) throw new Error(`label ${x.charCodeAt(0) < 0x100 ? x : "..."} has extent ${was} in one operand and ${shape[a]} in operand ${i}`);
      size.set(x, Math.max(was, shape[a]));
    });
    return { a: c.x(i), l };
  });
  const once = [...size.keys()].filter((x) => ops.filter((o) => o.l.includes(x)).length === 1);
  const out = rhs !== undefined
    ? labelsOf(rhs, (rhs.includes("...") ? ellRank : 0) + free(rhs))
    : [...ell, ...once.filter((x) => !ell.includes(x)).sort()];
  for (const o of ops) {
    // Broadcast size-1 axes ("..." broadcasting), then sum out labels no one else needs.
    const full = o.l.map((x) => size.get(x)!);
    if (full.some((d, a) => d !== o.a.shape[a])) o.a = np.broadcastTo(o.a, full);
    const gone = o.l.filter((x) => once.includes(x) && !out.includes(x));
    if (gone.length) {
      o.a = np.sum(o.a, gone.map((x) => o.l.indexOf(x)));
      o.l = o.l.filter((x) => !gone.includes(x));
    }
  }
  const sizes = (ls: string[]) => ls.map((x) => size.get(x)!);
  const arrange = (o: Labelled, order: string[]) => o.a.transpose(order.map((x) => o.l.indexOf(x)));
  while (ops.length > 1) {
    const A = ops.shift()!, B = ops.shift()!;
    const later = new Set([...out, ...ops.flatMap((o) => o.l)]);
    const shared = A.l.filter((x) => B.l.includes(x));
    const batch = shared.filter((x) => later.has(x)), contract = shared.filter((x) => !later.has(x));
    const left = A.l.filter((x) => !B.l.includes(x)), right = B.l.filter((x) => !A.l.includes(x));
    const [nb, nl, nk, nr] = [batch, left, contract, right].map((ls) => prod(sizes(ls)));
    const a = arrange(A, [...batch, ...left, ...contract]).reshape([nb, nl, nk]);
    const b = arrange(B, [...batch, ...contract, ...right]).reshape([nb, nk, nr]);
    const l = [...batch, ...left, ...right];
    ops.unshift({ a: np.matmul(a, b).reshape(sizes(l)), l });
  }
  const [last] = ops;
  const extra = last.l.filter((x) => !out.includes(x));
  if (extra.length) throw new Error(`internal: labels ${extra.join("")} left over`);
  return arr(arrange(last, out));
};

/**
 * Attention (opset 23; torch's scaled_dot_product_attention at opset ≥ 23): softmax(Q·Kᵀ·scale +
 * mask)·V per head. Q, K, V as [B, heads, seq, head size], or [B, seq, heads·head size] with
 * q_num_heads / kv_num_heads; fewer key/value heads than query heads are shared (GQA); the mask
 * bool (attend where true) or added; is_causal masks key j > query i; softcap c: c·tanh(·/c) of the scaled
 * products, before the mask.
 * No key/value cache (past_key, past_value) and no optional outputs: a denoiser has none.
 */
const Attention: Op = (c) => {
  if (c.has(4) || c.has(5)) throw new Error("Attention with past_key / past_value (a key-value cache) is not supported");
  if (c.node.outputs.slice(1).some((o) => o !== "")) throw new Error("Attention's present_key / present_value / qk_matmul_output outputs are not supported");
  const threeD = c.shape(0).length === 3;
  const heads = (i: number, attr: string) => {
    const x = c.x(i), [B, S, W] = x.shape;
    if (!threeD) return x;
    const h = c.int(attr, 0);
    if (!(h > 0) || W % h !== 0) throw new Error(`Attention with 3-D inputs needs ${attr} dividing the hidden size ${W}, got ${h}`);
    return x.reshape([B, S, h, W / h]).transpose([0, 2, 1, 3]);
  };
  const q = heads(0, "q_num_heads");
  let k = heads(1, "kv_num_heads"), v = heads(2, "kv_num_heads");
  const [B, Hq, Sq, D] = q.shape, Hk = k.shape[1], Sk = k.shape[2];
  if (Hq % Hk !== 0) throw new Error(`Attention: ${Hq} query heads are not a multiple of ${Hk} key/value heads`);
  if (Hk !== Hq) {
    // each key/value head serves Hq/Hk consecutive query heads
    const share = (x: Array) => np.broadcastTo(x.reshape([B, Hk, 1, Sk, x.shape[3]]), [B, Hk, Hq / Hk, Sk, x.shape[3]]).reshape([B, Hq, Sk, x.shape[3]]);
    k = share(k); v = share(v);
  }
  let scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(c.float("scale", 1 / Math.sqrt(D)));
  // the soft cap bounds the products before the mask (onnxruntime's order: a cap after it would let masked keys back in)
  const cap = c.float("softcap", 0);
  if (cap > 0) scores = np.tanh(scores.mul(1 / cap)).mul(cap);
  if (c.has(3)) {
    const m = c.x(3);
    scores = (m.dtype as string) === "bool" ? np.where(m, scores, -Infinity) : scores.add(m);
  }
  if (c.int("is_causal", 0) === 1) {
    const allowed = np.less(np.arange(Sk).reshape([1, Sk]), np.arange(Sq).reshape([Sq, 1]).add(1)); // key j ≤ query i
    scores = np.where(allowed, scores, -Infinity);
  }
  const y = np.matmul(nn.softmax(scores, -1), v);
  return arr(threeD ? y.transpose([0, 2, 1, 3]).reshape([B, Sq, -1]) : y);
};

export const LINALG_OPS: Record<string, Op> = {
  MatMul, Gemm, Einsum, Attention,
  ReduceSum: reduceOp("sum"), ReduceMean: reduceOp("mean"), ReduceMax: reduceOp("max"), ReduceMin: reduceOp("min"),
  ReduceProd: reduceOp("prod"), ReduceSumSquare: reduceOp("sumsquare"), ReduceL2: reduceOp("l2"),
  ReduceL1: reduceOp("l1"), ReduceLogSum: reduceOp("logsum"), ReduceLogSumExp: reduceOp("logsumexp"),
  Softmax: softmaxOp(false), LogSoftmax: softmaxOp(true),
};
