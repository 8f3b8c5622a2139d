// @ts-check
/**
 * The counter-based random numbers of tbcm, in plain JavaScript so that the web runtime
 * (tbcm-generator.js) and the library (src/numerics/random.ts) share one implementation: a key is
 * a 32-bit integer, every draw a pure function of (key, index), so `tbcm sample` and a web page
 * draw the same noises for the same seed.
 */

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function mix(/** @type {number} */ h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
export const hash2 = (/** @type {number} */ a, /** @type {number} */ b) => mix(mix(a ^ 0x9e3779b9) ^ Math.imul(b + 0x632be5ab, 0x27d4eb2f));
/** A key from an integer seed. */
export const key = (/** @type {number} */ seed) => hash2(seed >>> 0, 0x7f4a7c15);
/** A key derived from a key and an integer. */
export const foldIn = (/** @type {number} */ k, /** @type {number} */ data) => hash2(k, data >>> 0);

/** `n` draws from N(0, 1) by the Box–Muller transform. */
export function normal(/** @type {number} */ k, /** @type {number} */ n) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = (hash2(k, i) + 0.5) / 4294967296; // in (0, 1): log is finite
    const u2 = hash2(k, i + 1) / 4294967296;
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
