/** A small student network shared by tests (not a test file itself). */
import { numpy as np, tree, type Array } from "@jax-js/jax";
import { initMlp, type MlpConfig, type MlpParams } from "../src/models/mlp.ts";
import { key, normal } from "../src/numerics/random.ts";

export const smallStudent: MlpConfig = { dim: 6, condDim: 3, hidden: 32, embedDim: 32, depth: 2, mlpRatio: 2 };

/** Randomises the zero-initialised layers too, so every path of the network is exercised. */
export function randomStudentParams(cfg: MlpConfig = smallStudent): MlpParams {
  let i = 0;
  return tree.map((a: Array) => a.add(np.array(normal(key(100 + i++), a.size)).reshape(a.shape).mul(0.2)),
    initMlp(key(3), cfg) as never) as MlpParams;
}
