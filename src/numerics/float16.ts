/** The 16-bit floats as numbers: IEEE half precision and bfloat16 (float32's upper half), as files store them. */

/** IEEE half-precision bits → number (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const scratch = new Float32Array(1), scratchBits = new Uint32Array(scratch.buffer);

/** bfloat16 bits → number. */
export function bfloatToFloat(b: number): number {
  scratchBits[0] = (b & 0xffff) << 16;
  return scratch[0];
}

/** number → IEEE half-precision bits, rounded to nearest even (overflow to ±∞, underflow through subnormals to ±0). */
export function floatToHalf(x: number): number {
  scratch[0] = x;
  const u = scratchBits[0];
  const sign = (u >>> 16) & 0x8000, exp = (u >>> 23) & 0xff, man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e < -10) return sign;
  // normal: drop 13 mantissa bits; subnormal: the implicit bit joins the mantissa and 1 − e more bits go
  const m = e > 0 ? man : man | 0x800000, shift = e > 0 ? 13 : 14 - e;
  const kept = m >>> shift, rest = m - kept * 2 ** shift, halfway = 2 ** (shift - 1);
  const bits = (e > 0 ? e << 10 : 0) | kept;
  return sign | (bits + (rest > halfway || (rest === halfway && (bits & 1)) ? 1 : 0)); // a carry into the exponent is right
}
