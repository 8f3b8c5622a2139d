/**
 * Explicit, counter-based randomness on the host. A key is a 32-bit integer; every draw is a
 * pure function of (key, index), so a run is reproducible from its seed and a resumed run draws
 * exactly what the uninterrupted one would. Noise, timesteps and masks are drawn here and fed to
 * the compiled programs as inputs (no RNG inside the graphs, so every executor agrees).
 */
import { hash2, key, foldIn, normal } from "../../web/random.js";

export type Key = number;

// The core (key, foldIn, normal) is plain JavaScript in web/random.js, shared with the web runtime
// so that a page draws the noises `tbcm sample` draws.
export { key, foldIn, normal };

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
