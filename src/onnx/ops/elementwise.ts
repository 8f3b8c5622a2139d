/** Elementwise ONNX ops (with constant folding on host values) and arithmetic ops with attributes. */
import { numpy as np, nn, lax, type Array } from "@jax-js/jax";
import { Ctx, type Op, arr, host, hostMap, isFloat } from "../values.ts";

// ---------------------------------------------------------------------------------------------
// Elementwise ops: a host function (for constant folding) and a jax-js one

type Unary = { host?: (x: number) => number; jax: (x: Array, c: Ctx) => Array };

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

const UNARY: Record<string, Unary> = {
  Neg: { host: (x) => -x, jax: (x) => x.mul(-1) },
  Abs: { host: Math.abs, jax: (x) => np.abs(x) },
  Sqrt: { host: Math.sqrt, jax: (x) => np.sqrt(x) },
  Reciprocal: { host: (x) => 1 / x, jax: (x) => np.reciprocal(x) },
  Exp: { host: Math.exp, jax: (x) => np.exp(x) },
  Log: { host: Math.log, jax: (x) => np.log(x) },
  Tanh: { host: Math.tanh, jax: (x) => np.tanh(x) },
  Sin: { host: Math.sin, jax: (x) => np.sin(x) },
  Cos: { host: Math.cos, jax: (x) => np.cos(x) },
  Floor: { host: Math.floor, jax: (x) => np.floor(x) },
  Ceil: { host: Math.ceil, jax: (x) => np.ceil(x) },
  Sigmoid: { host: (x) => 1 / (1 + Math.exp(-x)), jax: (x) => nn.sigmoid(x) },
  Relu: { host: (x) => Math.max(x, 0), jax: (x) => nn.relu(x) },
  Erf: { jax: (x) => lax.erf(x) },
  Not: { host: (x) => (x ? 0 : 1), jax: (x) => np.logicalNot(x) },
  // softplus(x) = log(1 + exp(x)), written stably
  Softplus: { jax: (x) => nn.softplus(x) },
  // LeakyRelu: x if x ≥ 0 else alpha·x (alpha default 0.01)
  LeakyRelu: { jax: (x, c) => nn.leakyRelu(x, c.float("alpha", 0.01)) },
  // HardSigmoid: max(0, min(1, alpha·x + beta)), alpha 0.2, beta 0.5
  HardSigmoid: { jax: (x, c) => np.clip(x.mul(c.float("alpha", 0.2)).add(c.float("beta", 0.5)), 0, 1) },
  // HardSwish: x · max(0, min(1, x/6 + 1/2))
  HardSwish: { jax: (x) => x.ref.mul(np.clip(x.mul(1 / 6).add(0.5), 0, 1)) },
  Sign: { host: Math.sign, jax: (x) => np.sign(x) },
  Atan: { host: Math.atan, jax: (x) => np.atan(x) },
  Asin: { host: Math.asin, jax: (x) => np.asin(x) },
  Acos: { host: Math.acos, jax: (x) => np.acos(x) },
  Tan: { host: Math.tan, jax: (x) => np.tan(x) },
  Sinh: { host: Math.sinh, jax: (x) => np.sinh(x) },
  Cosh: { host: Math.cosh, jax: (x) => np.cosh(x) },
  // Softsign: x / (1 + |x|)
  Softsign: { jax: (x) => x.ref.div(np.abs(x).add(1)) },
  // Swish (opset 24): x · sigmoid(alpha·x), alpha 1
  Swish: { jax: (x, c) => x.ref.mul(nn.sigmoid(x.mul(c.float("alpha", 1)))) },
  // Round: to the nearest integer, halves to even (as ONNX and NumPy): floor(x + ½), less 1 where that tie landed on an odd number
  Round: {
    host: (x) => { const r = Math.floor(x + 0.5); return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r; },
    jax: (x) => {
      const r = np.floor(x.ref.add(0.5));
      const odd = np.notEqual(r.ref.sub(np.floor(r.ref.mul(0.5)).mul(2)), 0);
      return np.where(np.logicalAnd(np.equal(r.ref.sub(x), 0.5), odd), r.ref.sub(1), r);
    },
  },
  IsNaN: { jax: (x) => np.notEqual(x.ref, x) },
  // IsInf: ±∞, each sign counted where detect_positive / detect_negative (both 1 by default)
  IsInf: {
    jax: (x, c) => {
      const pos = c.int("detect_positive", 1) === 1, neg = c.int("detect_negative", 1) === 1;
      if (pos && neg) return np.equal(np.abs(x), Infinity);
      if (pos || neg) return np.equal(x, pos ? Infinity : -Infinity);
      return np.logicalAnd(np.equal(x.ref, Infinity), np.equal(x, -Infinity)); // neither counted: all false
    },
  },
  // Mish: x · tanh(softplus(x))
  Mish: { jax: (x) => x.ref.mul(np.tanh(nn.softplus(x))) },
  // Elu: x if x ≥ 0 else alpha·(eᵡ − 1) (alpha 1); the exponent is clamped at 0 so that the branch not taken stays finite
  Elu: { jax: (x, c) => np.where(np.less(x.ref, 0), np.exp(np.minimum(x.ref, 0)).sub(1).mul(c.float("alpha", 1)), x) },
  // Selu: gamma·(x if x > 0 else alpha·(eᵡ − 1)), the self-normalising constants by default
  Selu: {
    jax: (x, c) => np.where(np.greater(x.ref, 0), x.ref, np.exp(np.minimum(x, 0)).sub(1).mul(c.float("alpha", 1.67326319217681884765625)))
      .mul(c.float("gamma", 1.05070102214813232421875)),
  },
  // Celu: max(0, x) + min(0, alpha·(e^(x/alpha) − 1))
  Celu: {
    jax: (x, c) => {
      const a = c.float("alpha", 1);
      return np.maximum(x.ref, 0).add(np.minimum(np.exp(np.minimum(x, 0).mul(1 / a)).sub(1).mul(a), 0));
    },
  },
  // ThresholdedRelu: x if x > alpha else 0 (alpha 1)
  ThresholdedRelu: { jax: (x, c) => np.where(np.greater(x.ref, c.float("alpha", 1)), x, 0) },
  // Gelu (opset 20): 0.5·x·(1 + erf(x/√2)), or with approximate="tanh" 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
  Gelu: {
    jax: (x, c) => c.str("approximate", "none") === "tanh"
      ? x.ref.mul(0.5).mul(np.tanh(x.ref.add(x.ref.mul(x.ref).mul(x).mul(0.044715)).mul(SQRT_2_OVER_PI)).add(1))
      : x.ref.mul(0.5).mul(lax.erf(x.mul(Math.SQRT1_2)).add(1)),
  },
};

type Binary = { host?: (a: number, b: number) => number; jax: (a: Array, b: Array) => Array; bool?: boolean };

const BINARY: Record<string, Binary> = {
  Add: { host: (a, b) => a + b, jax: (a, b) => a.add(b) },
  Sub: { host: (a, b) => a - b, jax: (a, b) => a.sub(b) },
  Mul: { host: (a, b) => a * b, jax: (a, b) => a.mul(b) },
  Div: { host: (a, b) => a / b, jax: (a, b) => a.div(b) }, // integer division truncates: see hostBinary
  Max: { host: Math.max, jax: (a, b) => np.maximum(a, b) },
  Min: { host: Math.min, jax: (a, b) => np.minimum(a, b) },
  Sum: { host: (a, b) => a + b, jax: (a, b) => a.add(b) },
  Equal: { host: (a, b) => +(a === b), jax: (a, b) => np.equal(a, b), bool: true },
  Less: { host: (a, b) => +(a < b), jax: (a, b) => np.less(a, b), bool: true },
  LessOrEqual: { host: (a, b) => +(a <= b), jax: (a, b) => np.lessEqual(a, b), bool: true },
  Greater: { host: (a, b) => +(a > b), jax: (a, b) => np.greater(a, b), bool: true },
  GreaterOrEqual: { host: (a, b) => +(a >= b), jax: (a, b) => np.greaterEqual(a, b), bool: true },
  And: { host: (a, b) => +(a && b), jax: (a, b) => np.logicalAnd(a, b), bool: true },
  Or: { host: (a, b) => +(a || b), jax: (a, b) => np.logicalOr(a, b), bool: true },
  Xor: { host: (a, b) => +(!a !== !b), jax: (a, b) => np.logicalXor(a, b), bool: true },
};

function unaryOp(name: string): Op {
  const u = UNARY[name];
  return (c) => {
    const v = c.value(0);
    if (v.kind === "host" && u.host) return host(v.dtype, v.shape, v.data.map(u.host));
    return arr(u.jax(c.x(0), c));
  };
}

/** Binary ops (variadic ones, Max Min Sum Mean, fold left). */
function binaryOp(name: string): Op {
  const b = BINARY[name];
  return (c) => {
    const n = c.node.inputs.length;
    if (c.allHost() && b.host) {
      const dt = c.dtype(0);
      const intDiv = name === "Div" && !isFloat(dt);
      const fn = intDiv ? (x: number, y: number) => Math.trunc(x / y) : b.host;
      let acc = c.host(0);
      for (let i = 1; i < n; i++) acc = hostMap(b.bool ? "bool" : dt, [acc, c.host(i)], fn);
      return acc;
    }
    let acc = c.x(0);
    for (let i = 1; i < n; i++) acc = b.jax(acc, c.x(i));
    return arr(acc);
  };
}

/** PRelu: x if x ≥ 0 else slope·x, the slope broadcast to x (a parameter when it is an initializer). */
const PRelu: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], (x, a) => (x < 0 ? a * x : x));
  return arr(np.where(np.less(c.x(0), 0), c.x(0).mul(c.x(1)), c.x(0)));
};

const Where: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(1), [c.host(0), c.host(1), c.host(2)], (k, a, b) => (k ? a : b));
  return arr(np.where(c.x(0), c.x(1), c.x(2)));
};

const CAST_TO: Record<number, string> = {
  1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
  11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
};

/** CastLike: Cast to the element type of the second input. */
const CastLike: Op = (c) => castTo(c, c.dtype(1));

const Cast: Op = (c) => {
  const to = CAST_TO[c.int("to", 1)];
  if (!to) throw new Error(`Cast to type ${c.int("to", 1)} is not supported`);
  return castTo(c, to);
};

function castTo(c: Ctx, to: string) {
  const v = c.value(0);
  if (v.kind === "host") {
    const conv = isFloat(to) ? (x: number) => x : to === "bool" ? (x: number) => +(x !== 0) : Math.trunc;
    return host(to, v.shape, v.data.map(conv));
  }
  const target = isFloat(to) ? "float32" : to === "bool" ? "bool" : "int32";
  const x = c.x(0);
  if ((x.dtype as string) === target) return arr(x);
  if (target === "bool") return arr(np.notEqual(x, 0));
  return arr(np.astype(x, target as never));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic ops with attributes

const Pow: Op = (c) => {
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], Math.pow);
  const e = c.value(1);
  if (e.kind === "host" && e.data.length === 1) {
    // Constant exponents as products or sqrt: exact derivatives at x ≤ 0 and lowerable primitives.
    const p = e.data[0];
    if (p === 1) return arr(c.x(0));
    if (p === 2) return arr(c.x(0).mul(c.x(0)));
    if (p === 3) return arr(c.x(0).mul(c.x(0)).mul(c.x(0)));
    if (p === 0.5) return arr(np.sqrt(c.x(0)));
    if (p === -1) return arr(np.reciprocal(c.x(0)));
    if (p === -0.5) return arr(np.reciprocal(np.sqrt(c.x(0))));
  }
  return arr(np.power(c.x(0), c.x(1)));
};

const Mean: Op = (c) => {
  let acc = c.x(0);
  for (let i = 1; i < c.node.inputs.length; i++) acc = acc.add(c.x(i));
  return arr(acc.mul(1 / c.node.inputs.length));
};

const Clip: Op = (c) => {
  const lo = c.opset < 11 ? c.attr("min")?.f : c.has(1) ? c.host(1).data[0] : undefined;
  const hi = c.opset < 11 ? c.attr("max")?.f : c.has(2) ? c.host(2).data[0] : undefined;
  if (c.value(0).kind === "host") {
    return hostMap(c.dtype(0), [c.host(0)], (x) => Math.min(Math.max(x, lo ?? -Infinity), hi ?? Infinity));
  }
  let x = c.x(0);
  if (lo !== undefined) x = np.maximum(x, lo);
  if (hi !== undefined) x = np.minimum(x, hi);
  return arr(x);
};

const Mod: Op = (c) => {
  const fmod = c.int("fmod", 0) === 1;
  // fmod=0 (integers): the result has the sign of the divisor (Python's %); fmod=1: of the dividend (C's fmod).
  const f = fmod ? (a: number, b: number) => a % b : (a: number, b: number) => ((a % b) + b) % b;
  if (c.allHost()) return hostMap(c.dtype(0), [c.host(0), c.host(1)], f);
  return arr(fmod ? np.fmod(c.x(0), c.x(1)) : np.remainder(c.x(0), c.x(1)));
};

export const ELEMENTWISE_OPS: Record<string, Op> = {
  ...Object.fromEntries(Object.keys(UNARY).map((k) => [k, unaryOp(k)])),
  ...Object.fromEntries(Object.keys(BINARY).map((k) => [k, binaryOp(k)])),
  Pow, Mean, Clip, Mod, Where, Cast, CastLike, PRelu,
};
