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
