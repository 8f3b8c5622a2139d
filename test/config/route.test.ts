import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig, configToRaw, describeConfig, readYaml, ConfigError } from "../../src/config/schema.ts";

test("route.sampling: default jittered (the spec), logit keys SD3's 0 and 1; round trip through config.json", () => {
  const c = parseConfig(readYaml("configs/fmnist-tbcm-everywhere.yaml"));
  assert.deepEqual(c.route, { shift: 2.5, steps: 16, sampling: "jittered", logitMean: 0, logitStd: 1, legSteps: 0, legRange: [0.1, 1] });
  const ln = parseConfig({ ...(readYaml("configs/fmnist-tbcm-everywhere.yaml") as object), route: { sampling: "logit_normal", logit_mean: -0.4, logit_std: 1.2 } });
  assert.deepEqual(ln.route, { shift: 2.5, steps: 16, sampling: "logit_normal", logitMean: -0.4, logitStd: 1.2, legSteps: 0, legRange: [0.1, 1] });
  assert.deepEqual(parseConfig(JSON.parse(JSON.stringify(configToRaw(ln)))), ln);
  // a run's config.json written before the keys existed reads as the default sampling
  const old = configToRaw(c) as { route: Record<string, unknown> };
  delete old.route.sampling; delete old.route.logit_mean; delete old.route.logit_std; delete old.route.leg_steps; delete old.route.leg_range;
  assert.deepEqual(parseConfig(old), c);
  assert.match(describeConfig({}), /^ {2}sampling: "jittered" +# jittered \| ordered \| logit_normal \| mixed$/m);
});

test("route.sampling: bad values are one-line errors naming the key", () => {
  const refused = (route: Record<string, unknown>, re: RegExp, extra: Record<string, unknown> = {}) =>
    assert.throws(() => parseConfig({ route, ...extra }), (e: Error) => e instanceof ConfigError && re.test(e.message) && !e.message.includes("\n"));
  refused({ sampling: "uniform" }, /"route\.sampling": expected one of jittered, ordered, logit_normal, mixed, got "uniform"/);
  refused({ logit_std: 0 }, /"route\.logit_std": expected a number > 0 and ≤ 10, got 0/);
  refused({ logit_std: -1 }, /"route\.logit_std"/);
  refused({ logit_mean: 50 }, /"route\.logit_mean": expected a number ≥ -10 and ≤ 10, got 50/);
  refused({ logit_mean: ".nan" }, /"route\.logit_mean": expected a number/);
  refused({ sampling: "ordered" }, /"route\.sampling": the sCM baseline .* use method: tbcm/, { method: "scm" });
  assert.equal(parseConfig({ method: "scm", route: { sampling: "jittered" } }).route.sampling, "jittered");
});

test("loss.endpoint_weight: default 0 (the spec's loss); a run's config.json from before reads as 0; bad values and the baseline refused in one line", () => {
  const c = parseConfig(readYaml("configs/fmnist-tbcm-everywhere.yaml"));
  assert.equal(c.loss.endpointWeight, 0);
  const old = configToRaw(c) as { loss: Record<string, unknown> };
  delete old.loss.endpoint_weight;
  assert.deepEqual(parseConfig(old), c);
  assert.equal(parseConfig({ loss: { endpoint_weight: 10 } }).loss.endpointWeight, 10);
  const refused = (raw: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseConfig(raw), (e: Error) => e instanceof ConfigError && re.test(e.message) && !e.message.includes("\n"));
  refused({ loss: { endpoint_weight: -1 } }, /"loss\.endpoint_weight": expected a number ≥ 0/);
  refused({ loss: { endpoint_weight: 1e9 } }, /"loss\.endpoint_weight"/);
  refused({ loss: { endpoint_weight: "lots" } }, /"loss\.endpoint_weight": expected a number/);
  refused({ method: "scm", loss: { endpoint_weight: 1 } }, /"loss\.endpoint_weight": the sCM baseline.* use method: tbcm/);
  assert.equal(parseConfig({ method: "scm", loss: { endpoint_weight: 0 } }).loss.endpointWeight, 0);
});

test("eval.multi_step: default shifted (the spec's schedule), from_mid and tail accepted, anything else refused naming the key", () => {
  const stack = readYaml("configs/fmnist-tbcm-everywhere.yaml") as Record<string, unknown>;
  assert.equal(parseConfig(stack).eval.multiStep, "shifted");
  assert.equal(parseConfig({ ...stack, eval: { multi_step: "from_mid" } }).eval.multiStep, "from_mid");
  assert.equal(parseConfig({ ...stack, eval: { multi_step: "tail" } }).eval.multiStep, "tail");
  assert.throws(() => parseConfig({ ...stack, eval: { multi_step: "linear" } }),
    (e: Error) => e instanceof ConfigError && /"eval\.multi_step": expected one of shifted, from_mid, tail, got "linear"/.test(e.message));
});
