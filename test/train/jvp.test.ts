import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, jvp, tree, type Array } from "@jax-js/jax";
import { mlpStudent } from "../../src/gmm/student.ts";
import { key, normal } from "../../src/numerics/random.ts";
import { smallStudent, randomStudentParams } from "../studentFixture.ts";

const cfg = smallStudent;


test("exact JVP of the student along (v_u, v_t) equals central finite differences (float64 check)", () => {
  const params = randomStudentParams();
  const B = 4;
  const u = Float32Array.from(normal(key(1), B * cfg.dim));
  const t = [0.3, 0.8, 1.2, 1.5];
  const vu = Float32Array.from(normal(key(2), B * cfg.dim));
  const vt = [0.2, -0.5, 0.4, 0.1];
  const cond = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]);
  const w = np.array([[4], [4.5], [5], [1]]);
  const F = (uu: Array, tt: Array) => {
    const [f, lv] = mlpStudent(tree.ref(params), uu, tt, cond.ref, w.ref);
    lv.dispose();
    return f;
  };
  const col = (x: number[]) => np.array(x).reshape([B, 1]);
  const mat = (x: Float32Array) => np.array(x).reshape([B, cfg.dim]);
  const [, J] = jvp(F, [mat(u), col(t)], [mat(vu), col(vt)]);
  const exact = J.dataSync();
  // Central differences in float32 with h = 1e-3: truncation O(h²), rounding O(ε/h).
  const h = 1e-3;
  const at = (sign: number) => F(mat(u.map((x, i) => x + sign * h * vu[i])), col(t.map((x, i) => x + sign * h * vt[i]))).dataSync();
  const plus = at(1), minus = at(-1);
  let err = 0, ref = 0;
  exact.forEach((e: number, i: number) => {
    const fd = (plus[i] - minus[i]) / (2 * h);
    err += (e - fd) ** 2;
    ref += fd ** 2;
  });
  assert.ok(Math.sqrt(err / ref) < 3e-3, `relative error ${Math.sqrt(err / ref)}`);
});
