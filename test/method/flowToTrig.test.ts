import { test } from "node:test";
import assert from "node:assert/strict";
import { numpy as np } from "@jax-js/jax";
import { flowTime, flowScale, flowToTrigVelocity } from "../../src/method/flowToTrig.ts";

test("flow time and scale at the spec's check values", () => {
  const cases = [[0.3, 0.236254, 0.799452], [1.0, 0.608979, 0.723708], [1.3, 0.782708, 0.81231]];
  const t = np.array(cases.map((c) => c[0]));
  const s = flowTime(t);
  const k = flowScale(s.ref);
  const sv = s.dataSync(), kv = k.dataSync();
  cases.forEach(([, sExp, kExp], i) => {
    assert.ok(Math.abs(sv[i] - sExp) < 2e-6, `s(${cases[i][0]}) = ${sv[i]}`);
    assert.ok(Math.abs(kv[i] - kExp) < 2e-6, `k(${cases[i][0]}) = ${kv[i]}`);
  });
});

test("an exact flow model of a point mass converts to the exact TrigFlow velocity", () => {
  // Data z, noise ε: the flow velocity is ε − z everywhere on the path, and the TrigFlow unit
  // velocity at u = cos t·z + sin t·ε is cos t·ε − sin t·z.
  const z = [0.7, -1.2, 0.3], eps = [-0.4, 0.9, 1.5];
  for (const t of [0.2, 0.8, 1.4]) {
    const u = np.array([z.map((zi, i) => Math.cos(t) * zi + Math.sin(t) * eps[i])]);
    const F = flowToTrigVelocity((x, s) => { x.dispose(); s.dispose(); return np.array([eps.map((e, i) => e - z[i])]); }, u, np.array([[t]]));
    const got = F.dataSync();
    z.forEach((zi, i) => assert.ok(Math.abs(got[i] - (Math.cos(t) * eps[i] - Math.sin(t) * zi)) < 1e-5));
  }
});
