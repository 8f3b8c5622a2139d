import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np, type Array as JArray } from "@jax-js/jax";
import { scmPairs, scmTimes } from "../../src/method/scmPairs.ts";
import { SIGMA_D, SCM_P_MEAN, SCM_P_STD } from "../../src/config/defaults.ts";
import { key, normal } from "../../src/numerics/random.ts";

test("sCM baseline pairs: x_t = cos t·σ_d z + sin t·σ_d n, and dx/dt the teacher's guided velocity there", () => {
  const B = 3, d = 2;
  const z = Float32Array.from([1, -1, 0.5, 2, 0, 0]), n = Float32Array.from([0, 1, -1, 0.5, 2, -2]), t = [0.3, 1.0, 1.5];
  // a teacher whose conditional and unconditional velocities differ: F = u·2 + c (c a [B, 1] condition)
  const teacher = (u: JArray, _t: JArray, c: JArray) => { _t.dispose(); return u.mul(2).add(c); };
  const w = 3;
  const [xt, dxdt] = scmPairs(teacher, np.array(z).reshape([B, d]), np.array(n).reshape([B, d]), np.array(Float32Array.from(t)).reshape([B, 1]),
    np.array(Float32Array.from([1, 1, 1])).reshape([B, 1]), np.zeros([B, 1]), np.array(Float32Array.from([w, w, w])).reshape([B, 1]));
  const x = xt.dataSync() as Float32Array, v = dxdt.dataSync() as Float32Array;
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < d; j++) {
      const i = b * d + j;
      const expected = Math.cos(t[b]) * SIGMA_D * z[i] + Math.sin(t[b]) * SIGMA_D * n[i];
      assert.ok(Math.abs(x[i] - expected) < 1e-6, `x_t[${i}]`);
      // σ_d·(F_u + w·(F_c − F_u)) with F_c − F_u = 1: σ_d·(2·x/σ_d + w)
      assert.ok(Math.abs(v[i] - SIGMA_D * (2 * (expected / SIGMA_D) + w)) < 1e-5, `dx/dt[${i}]: ${v[i]}`);
    }
  }
});

test("sCM baseline times: σ_d·tan t is log-normal with the reference's P_mean and P_std", () => {
  const t = scmTimes(key(7), 20000);
  const logs = Array.from(t, (a) => Math.log(Math.tan(a) * SIGMA_D));
  const mean = logs.reduce((s, x) => s + x, 0) / logs.length;
  const std = Math.sqrt(logs.reduce((s, x) => s + (x - mean) ** 2, 0) / logs.length);
  assert.ok(Math.abs(mean - SCM_P_MEAN) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(std - SCM_P_STD) < 0.03, `std ${std}`);
  assert.ok(t.every((a) => a > 0 && a < Math.PI / 2));
  assert.deepEqual(Array.from(scmTimes(key(7), 5)), Array.from(normal(key(7), 5).map((e) => Math.atan(Math.exp(SCM_P_MEAN + SCM_P_STD * e) / SIGMA_D))));
});
