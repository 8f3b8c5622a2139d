import { test } from "node:test";
import assert from "node:assert/strict";
import { key, foldIn, normal, uniform } from "../../src/numerics/random.ts";
import * as web from "../../web/tbcm-generator.js";

test("the counter-based generator is pinned: recorded runs, tests and web pages depend on its exact draws", () => {
  // values recorded from the generator as first written (2026-11-25)
  assert.deepEqual(Array.from(normal(foldIn(key(5), 3), 4)), Array.from(Float32Array.of(0.964836061000824, 0.4902823865413666, -0.07479523867368698, -0.1442018300294876)));
  // the web runtime draws through the same module
  assert.deepEqual(Array.from(web.normal(web.foldIn(web.key(5), 3), 393)), Array.from(normal(foldIn(key(5), 3), 393)));
  // moments of a long draw: N(0, 1) and U[0, 1)
  const z = normal(key(1), 200_000), u = uniform(key(2), 200_000);
  const mean = (x: ArrayLike<number>) => { let s = 0; for (let i = 0; i < x.length; i++) s += x[i]; return s / x.length; };
  assert.ok(Math.abs(mean(z)) < 0.01 && Math.abs(mean(z.map((v) => v * v)) - 1) < 0.01);
  assert.ok(Math.abs(mean(u) - 0.5) < 0.005 && u.every((v) => v >= 0 && v < 1));
});
