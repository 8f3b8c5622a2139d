/**
 * Explicit, counter-based randomness on the host. A key is a 32-bit integer; every draw is a
 * pure function of (key, index), so a run is reproducible from its seed and a resumed run draws
 * exactly what the uninterrupted one would. Noise, timesteps and masks are drawn here and fed to
 * the compiled programs as inputs (no RNG inside the graphs, so every executor agrees).
 */
export type Key = number;

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash2(a: number, b: number): number {
  return mix(mix(a ^ 0x9e3779b9) ^ Math.imul(b + 0x632be5ab, 0x27d4eb2f));
}

/** A key from an integer seed. */
export function key(seed: number): Key {
  return hash2(seed >>> 0, 0x7f4a7c15);
}

/** A new key derived from `k` and an integer (a step number, a stream name's id). */
export function foldIn(k: Key, data: number): Key {
  return hash2(k, data >>> 0);
}

/** `n` independent keys derived from `k`. */
export function split(k: Key, n = 2): Key[] {
  return Array.from({ length: n }, (_, i) => foldIn(k, 0x51ed27 + i));
}

/** Uniform in [0, 1), 32-bit resolution. */
function unit(k: Key, i: number): number {
  return hash2(k, i) / 4294967296;
}

/** `n` draws from Uniform[lo, hi). */
export function uniform(k: Key, n: number, lo = 0, hi = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * unit(k, i);
  return out;
}

/** `n` draws from N(0, 1) by the Box–Muller transform. */
export function normal(k: Key, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = (hash2(k, i) + 0.5) / 4294967296; // in (0, 1): log is finite
    const u2 = unit(k, i + 1);
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
