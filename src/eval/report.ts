/**
 * A run's report a person can read (`report.md` in the run directory): the metrics table, the
 * training curves (SVG, drawn from log.jsonl), the sample grids the evaluation wrote, and the
 * config.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../numerics/safetensors.ts";
import { type GridLayout, writeImageGrid, writeImagePanels } from "../data/png.ts";

type LogRecord = Record<string, number | string>;

/** The evaluation's side-by-side grid: the teacher at 16 steps, then the student at 1, 2 and 4 steps, of the same prompts and noises. */
export const COMPARE_GRID = "grid-compare.png";

/**
 * The sample grids of an evaluation, the names the report shows: `grid-teacher-16step.png`,
 * `grid-student-<n>step.png` for each student step count, and all of them side by side in
 * {@link COMPARE_GRID}. Pixels [rows·cols·h·w] in [0, 1], the same prompts and noises in each.
 */
export function writeSampleGrids(dir: string, teacher: Float32Array, students: ReadonlyMap<number, Float32Array>, layout: GridLayout): void {
  writeImageGrid(join(dir, "grid-teacher-16step.png"), teacher, layout);
  for (const [steps, px] of students) writeImageGrid(join(dir, `grid-student-${steps}step.png`), px, layout);
  writeImagePanels(join(dir, COMPARE_GRID), [teacher, ...students.values()], layout);
}

/** A small line chart of one series against step, as SVG (log-scaled y when the values span > 20×). */
export function lineChart(title: string, points: [number, number][], width = 480, height = 200): string {
  const finite = points.filter(([, y]) => Number.isFinite(y) && y > -Infinity);
  if (finite.length < 2) return "";
  const xs = finite.map(([x]) => x), ys = finite.map(([, y]) => y);
  const positive = ys.every((y) => y > 0);
  const logY = positive && Math.max(...ys) / Math.min(...ys) > 20;
  const f = (y: number) => (logY ? Math.log10(y) : y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys.map(f)), Math.max(...ys.map(f))];
  const m = 40;
  const px = (x: number) => m + ((x - x0) / Math.max(1e-12, x1 - x0)) * (width - 2 * m);
  const py = (y: number) => height - m + -((f(y) - y0) / Math.max(1e-12, y1 - y0)) * (height - 2 * m);
  const path = finite.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
  const label = (v: number) => (logY ? (10 ** v).toPrecision(3) : v.toPrecision(3));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/><text x="${m}" y="16">${title}${logY ? " (log scale)" : ""}</text>
<line x1="${m}" y1="${height - m}" x2="${width - m}" y2="${height - m}" stroke="#888"/><line x1="${m}" y1="${m}" x2="${m}" y2="${height - m}" stroke="#888"/>
<text x="${m}" y="${height - m + 14}">${x0}</text><text x="${width - m}" y="${height - m + 14}" text-anchor="end">${x1}</text>
<text x="${m - 4}" y="${m + 4}" text-anchor="end">${label(y1)}</text><text x="${m - 4}" y="${height - m}" text-anchor="end">${label(y0)}</text>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/></svg>\n`;
}

/** The image metrics as one row per sampler (student at each step count, teacher), when the run has them. */
export function imageSummary(metrics: Record<string, unknown>): string[] {
  const num = (k: string) => (typeof metrics[k] === "number" ? (metrics[k] as number) : undefined);
  const steps = Object.keys(metrics).map((k) => /^fd_student_(\d+)step$/.exec(k)?.[1]).filter((x): x is string => x !== undefined);
  const teacherFd = num("fd_teacher_16step"), teacherAcc = num("accuracy_teacher_16step"), floor = num("fd_floor");
  if (steps.length === 0 || teacherFd === undefined || teacherAcc === undefined) return [];
  const row = (name: string, fd: number | undefined, acc: number | undefined) =>
    `| ${name} | ${fd?.toFixed(2)}${floor ? ` (${(fd! / floor).toFixed(1)}× floor)` : ""} | ${acc?.toFixed(3)} | ${(fd! / teacherFd).toFixed(2)}× | ${(acc! / teacherAcc).toFixed(3)}× |`;
  return [
    "## Summary", "",
    `${num("eval_samples")} images from the held-out eval prompts at guidance ${num("eval_guidance")}; lower FD and higher accuracy are better. ` +
      `Multi-step sampling: middle angle ${num("two_step_mid")} for 2 steps${num("four_step_angle_1") === undefined ? "" : `, angles ${[1, 2, 3].map((i) => num(`four_step_angle_${i}`)?.toFixed(3)).join(", ")} for 4`}, re-noising share η ${num("renoise_eta") ?? 1}.`, "",
    "| sampler | FD | prompt accuracy | FD / teacher's | accuracy / teacher's |", "|---|---|---|---|---|",
    ...steps.map((n) => row(`student, ${stepCount(n)}`, num(`fd_student_${n}step`), num(`accuracy_student_${n}step`))),
    row("teacher, 16 steps", teacherFd, teacherAcc), "",
    ...pairedSummary(metrics),
  ];
}

const stepCount = (n: string) => `${n} step${n === "1" ? "" : "s"}`;

/** The paired differences (`src/eval/paired.ts`) as a table, when the run has them. */
function pairedSummary(metrics: Record<string, unknown>): string[] {
  const names = Object.keys(metrics).map((k) => /^fd_(\d+step_minus_\w+?)_se$/.exec(k)?.[1]).filter((x): x is string => x !== undefined);
  if (names.length === 0) return [];
  const pm = (k: string, digits: number) => {
    const v = metrics[k] as number, se = metrics[`${k}_se`] as number;
    return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)} ± ${se.toFixed(digits)}`;
  };
  // "4step_minus_2step" → "4 steps − 2 steps", "1step_minus_teacher" → "1 step − teacher"
  const label = (name: string) => name.replace("_minus_", " − ").replace(/(\d+)step/g, (_, n: string) => stepCount(n));
  return [
    "Paired differences: the same prompts and noises on both sides, so the draw's luck cancels; ± one standard error " +
      "(accuracy: of the per-image hit differences; FD: over bootstrap resamples of the images).", "",
    "| comparison | FD difference | accuracy difference |", "|---|---|---|",
    ...names.map((n) => `| ${label(n)} | ${pm(`fd_${n}`, 2)} | ${pm(`accuracy_${n}`, 3)} |`), "",
  ];
}

/** Writes report.md (+ curve SVGs) for the run in `dir`. */
export function writeReport(dir: string, title: string, metrics: Record<string, unknown>, config: unknown, notes: string[] = []): string {
  const log: LogRecord[] = existsSync(join(dir, "log.jsonl"))
    ? readFileSync(join(dir, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
  const series = (key: string): [number, number][] => log.filter((r) => typeof r[key] === "number").map((r) => [r.step as number, r[key] as number]);
  const charts: string[] = [];
  for (const key of ["loss", "loss_no_logvar", "tangent_norm", "grad_norm", "consistency_rel_mse_1step", "lr"]) {
    const svg = lineChart(key, series(key));
    if (!svg) continue;
    writeFileAtomic(join(dir, `curve-${key}.svg`), svg);
    charts.push(`![${key}](curve-${key}.svg)`);
  }
  const grids = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith("grid-") && f.endsWith(".png")).sort() : [];
  const fmt = (v: unknown) => (typeof v === "number" ? String(Number(v.toPrecision(5))) : String(v));
  const md = [
    `# ${title}`, "",
    ...notes.map((n) => `- ${n}`), notes.length ? "" : "",
    ...imageSummary(metrics),
    "## Metrics", "", "| metric | value |", "|---|---|", ...Object.entries(metrics).map(([k, v]) => `| ${k} | ${fmt(v)} |`), "",
    ...(grids.length ? ["## Samples", "", "Rows: one prompt each, spread over the prompt file (on the default stack, one class each: t-shirt … ankle boot; an unconditional teacher's rows are more of its samples); columns: fixed noises, the same for every grid.", "",
      ...grids.map((g) => g === COMPARE_GRID
        ? `### side by side: teacher 16 steps | student 1 step | 2 steps | 4 steps\n\nThe same prompts and starting noises in each panel, so each image can be compared with the teacher's along its row.\n\n![${g}](${g})\n`
        : `### ${g.replace(/^grid-|\.png$/g, "")}\n\n![${g}](${g})\n`)] : []),
    ...(charts.length ? ["## Training curves", "", ...charts, ""] : []),
    "## Config", "", "```json", JSON.stringify(config, null, 2), "```", "",
  ].join("\n");
  const path = join(dir, "report.md");
  writeFileAtomic(path, md);
  return path;
}
