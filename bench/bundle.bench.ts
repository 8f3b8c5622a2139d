/**
 * Teacher bundles (src/bundle/) against the native path: ms per loop iteration (pair pass +
 * training step, as `trainStudent` runs them, ONNX Runtime executor) for the shipped teacher
 * through `kind: stack` and through its bundle (`tbcm export-teacher`), and for the Sana-style
 * fixture of test/fixtures/onnx as a bundle; steps per hour, and peak RSS of each run. Each case
 * runs in its own process (peak RSS is per process).
 *
 *   npx tsx bench/bundle.bench.ts [--iters 5] [--prompts 4] [--route 16]
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { tempDir } from "../test/tempDir.ts"; // scratch, removed when the bench exits

const { values } = parseArgs({ options: { iters: { type: "string" }, prompts: { type: "string" }, route: { type: "string" }, child: { type: "string" }, dir: { type: "string" } } });
const iters = Number(values.iters ?? 5), prompts = Number(values.prompts ?? 4), route = Number(values.route ?? 16);

async function child(kind: string, dir: string) {
  await import("../src/numerics/threads.ts");
  const { tree } = await import("@jax-js/jax");
  const { parseConfig } = await import("../src/config/schema.ts");
  const { evalKeys, drawPairs, distillPrograms, initialStudent, STREAM } = await import("../src/train/distill.ts");
  const { teacherKind } = await import("../src/run/kinds.ts");
  const { routeAngles } = await import("../src/method/route.ts");
  const { tangentRatio } = await import("../src/method/loss.ts");
  const { makeOptimizer } = await import("../src/train/optim.ts");
  const { key, foldIn } = await import("../src/numerics/random.ts");
  const { parameterCount } = await import("../src/numerics/tree.ts");
  const teacher = kind === "stack" ? { kind: "stack" } : { kind: "onnx", dir: join(dir, kind) };
  const config = parseConfig({ method: "tbcm", seed: 0, executor: "onnx", prompts_file: kind === "fixture" ? "" : "prompts/train.txt", teacher, route: { shift: 2.5, steps: route }, optim: { kind: "adamw", lr: 2e-4 }, train: { steps: 1000, prompts_per_step: prompts } });
  const k = teacherKind(config.teacher.kind);
  const cfg = k.resolveConfig?.(config) ?? config;
  const problem = await k.problem(cfg, evalKeys(0));
  const optimizer = makeOptimizer(cfg.optim);
  const params = initialStudent(problem, cfg);
  const count = parameterCount(params as never);
  const programs = distillPrograms(cfg, problem, optimizer, params, optimizer.init(tree.flatten(params as never)[0] as never));
  let weights = programs.initialWeights;
  const angles = routeAngles(cfg.route.shift, cfg.route.steps);
  const times: number[] = [];
  for (let s = 0; s <= iters; s++) {
    const t0 = performance.now();
    const batch = await drawPairs(cfg, problem, foldIn(foldIn(key(0), STREAM.step), s), angles, programs.pairs);
    const out = await programs.step(weights, batch, tangentRatio(s, cfg.loss), optimizer.hyper(s, 2e-4));
    weights = out.weights;
    times.push(performance.now() - t0);
  }
  const ms = [...times.slice(1)].sort((a, b) => a - b)[Math.floor(iters / 2)];
  console.log(JSON.stringify({ kind, params: count, first_ms: Math.round(times[0]), ms: Math.round(ms), rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) }));
  await programs.dispose();
  process.exit(0);
}

if (values.child) await child(values.child, values.dir!);
else {
  const dir = tempDir("tbcm-bundle-bench-");
  const { exportTeacherBundle } = await import("../src/bundle/exportTeacher.ts");
  await exportTeacherBundle(join(dir, "fmnist"));
  // the fixture as a bundle (as test/bundle/fixture.test.ts writes it)
  const { readOnnxFile } = await import("../src/onnx/reader.ts");
  const { saveSafetensors } = await import("../src/numerics/safetensors.ts");
  const { normal, key } = await import("../src/numerics/random.ts");
  const fx = join(dir, "fixture");
  mkdirSync(fx);
  copyFileSync("test/fixtures/onnx/denoiser.onnx", join(fx, "transformer.onnx"));
  const names = ["", ...Array.from({ length: 16 }, (_, i) => `prompt ${i}`)];
  saveSafetensors(join(fx, "prompt_embeddings.safetensors"), new Map([["embeddings", { shape: [names.length, 8, 16], data: normal(key(1), names.length * 128) }]]), { prompts: JSON.stringify(names) });
  const temb = readOnnxFile("test/fixtures/onnx/denoiser.onnx").graph.nodes.find((n) => n.inputs.includes("t_embed.2.weight"))!.outputs[0];
  writeFileSync(join(fx, "teacher.json"), JSON.stringify({ format: "tbcm-teacher-bundle-1", latent_shape: [4, 8, 8], transformer: { inputs: { latent: "x", time: "t", condition: "cond" }, output: "v", prediction: "flow_velocity", time_embedding: temb }, guidance_scales: [4, 4.5, 5] }));
  const rows: { kind: string; params: number; ms: number; first_ms: number; rss_mb: number }[] = [];
  for (const kind of ["stack", "fmnist", "fixture"]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/bundle.bench.ts", "--child", kind, "--dir", dir, "--iters", String(iters), "--prompts", String(prompts), "--route", String(route)], { encoding: "utf8" });
    const line = r.stdout.trim().split("\n").pop()!;
    if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
    rows.push(JSON.parse(line));
  }
  const stack = rows[0].ms;
  console.log(`\n${prompts} prompts × ${route - 1} pairs per step, ONNX Runtime executor, median of ${iters} loop iterations (pair pass + training step)\n`);
  console.log("| teacher | path | student parameters | ms / step | × native | steps / hour | first step (compile) ms | peak RSS MB |");
  console.log("|---|---|---|---|---|---|---|---|");
  const label: Record<string, [string, string]> = { stack: ["fmnist DiT", "native (kind: stack)"], fmnist: ["fmnist DiT", "bundle (kind: onnx)"], fixture: ["Sana-style fixture block", "bundle (kind: onnx)"] };
  for (const r of rows) {
    console.log(`| ${label[r.kind][0]} | ${label[r.kind][1]} | ${r.params.toLocaleString()} | ${r.ms} | ${r.kind === "fixture" ? "—" : (r.ms / stack).toFixed(2)} | ${Math.round(3.6e6 / r.ms).toLocaleString()} | ${r.first_ms} | ${r.rss_mb} |`);
  }
}
