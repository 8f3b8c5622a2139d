/**
 * A run directory of `tbcm distill`, owned by one object: its files (config.json, log.jsonl,
 * checkpoint.safetensors, student.safetensors, metrics.json, report.md, grids) and a lock that
 * keeps a second process out while one writes. A stale lock (its process is gone) is taken over,
 * so a run killed by SIGKILL or a power loss can always be resumed.
 */
import { closeSync, existsSync, openSync, readFileSync, statSync, unlinkSync, writeSync, appendFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../numerics/safetensors.ts";

/** A problem with a run directory: one line naming the directory and the fix. */
export class RunDirError extends Error {}

const LOCK = "run.lock";

/** True when a process with this pid exists (signal 0 only checks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

export class RunDir {
  readonly dir: string;
  #locked = false;
  #onExit = () => this.release();

  private constructor(dir: string) {
    this.dir = dir;
  }

  get configPath() { return join(this.dir, "config.json"); }
  get logPath() { return join(this.dir, "log.jsonl"); }
  get checkpointPath() { return join(this.dir, "checkpoint.safetensors"); }
  get studentPath() { return join(this.dir, "student.safetensors"); }
  /** Where the student kept at `step` goes (train.snapshot_every), its folder made; zero-padded so the files sort by step. */
  snapshotPath(step: number): string {
    mkdirSync(join(this.dir, "snapshots"), { recursive: true });
    return join(this.dir, "snapshots", `student-${String(step).padStart(6, "0")}.safetensors`);
  }
  get metricsPath() { return join(this.dir, "metrics.json"); }

  /** A directory to read (a finished or stopped run); nothing is locked or written. */
  static existing(dir: string): RunDir {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RunDirError(`"${dir}" holds no finished student: it is not a directory (give a run directory of tbcm distill)`);
    return new RunDir(dir);
  }

  /**
   * A directory to write a run into, locked for this process: a new run (refused when the
   * directory already holds one) or, with `resume`, the continuation of the run it holds.
   */
  static claim(dir: string, resume: boolean): RunDir {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new RunDirError(`--out "${dir}" is a file, not a directory: choose a directory`);
    mkdirSync(dir, { recursive: true });
    const run = new RunDir(dir);
    run.#lock();
    try {
      if (resume && !existsSync(run.checkpointPath)) throw new RunDirError(`no checkpoint in "${dir}": nothing to resume (run without --resume)`);
      if (!resume && existsSync(run.checkpointPath)) throw new RunDirError(`"${dir}" already holds a run; pass --resume to continue it, or choose a new --out`);
    } catch (e) {
      run.release();
      throw e;
    }
    return run;
  }

  #lock(): void {
    const path = join(this.dir, LOCK);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, "wx");
        writeSync(fd, String(process.pid));
        closeSync(fd);
        this.#locked = true;
        process.once("exit", this.#onExit);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number(readFileSync(path, "utf8").trim());
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
          throw new RunDirError(`"${this.dir}" is in use by another tbcm process (pid ${pid}); wait for it to finish, or choose another --out`);
        }
        unlinkSync(path); // stale: its process is gone (killed, or the machine went down)
      }
    }
    throw new RunDirError(`cannot lock "${this.dir}": another process keeps taking its lock`);
  }

  /** Releases the lock (idempotent). */
  release(): void {
    if (!this.#locked) return;
    this.#locked = false;
    process.removeListener("exit", this.#onExit);
    try {
      unlinkSync(join(this.dir, LOCK));
    } catch {
      // already gone: nothing to release
    }
  }

  /** The raw contents of config.json (validation is the caller's: it knows the schema). */
  readConfigJson(): unknown {
    let text: string;
    try {
      text = readFileSync(this.configPath, "utf8");
    } catch {
      throw new RunDirError(`no config.json in "${this.dir}": is it a run directory of tbcm distill?`);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new RunDirError(`"${this.configPath}" is not valid JSON: the run directory is damaged`);
    }
  }

  writeConfigJson(config: unknown): void {
    writeFileAtomic(this.configPath, JSON.stringify(config, null, 2) + "\n");
  }

  /** Starts an empty log (a new run). */
  startLog(): void {
    writeFileSync(this.logPath, "");
  }

  appendLog(record: Record<string, unknown>): void {
    appendFileSync(this.logPath, JSON.stringify(record) + "\n");
  }

  /**
   * Keeps the log lines up to `step` (a resumed run repeats the steps after its checkpoint, so
   * the log reads as one run). A torn last line (a kill mid-write) is dropped; any other
   * unreadable line is an error and the log is left as it is.
   */
  keepLogUpTo(step: number): { dropped: number; torn: boolean } {
    if (!existsSync(this.logPath)) return { dropped: 0, torn: false };
    const text = readFileSync(this.logPath, "utf8");
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    let torn = false;
    const records = lines.map((line, i) => {
      try {
        const r = JSON.parse(line);
        if (typeof r !== "object" || r === null || !Number.isInteger(r.step)) throw new Error("no step");
        return { line, step: r.step as number };
      } catch {
        if (i === lines.length - 1 && !text.endsWith("\n")) {
          torn = true;
          return undefined;
        }
        throw new RunDirError(`line ${i + 1} of "${this.logPath}" is not a log record; the log was left as it is (move it away to resume)`);
      }
    }).filter((r) => r !== undefined);
    const kept = records.filter((r) => r.step <= step);
    writeFileAtomic(this.logPath, kept.map((r) => r.line + "\n").join(""));
    return { dropped: records.length - kept.length, torn };
  }

  hasStudent(): boolean {
    return existsSync(this.studentPath);
  }

  /** metrics.json, or {} when the run has none yet. */
  readMetrics(): Record<string, unknown> {
    if (!existsSync(this.metricsPath)) return {};
    try {
      return JSON.parse(readFileSync(this.metricsPath, "utf8"));
    } catch {
      throw new RunDirError(`"${this.metricsPath}" is not valid JSON: evaluate again with tbcm eval --recompute`);
    }
  }

  writeMetrics(metrics: Record<string, unknown>): void {
    writeFileAtomic(this.metricsPath, JSON.stringify(metrics, null, 2) + "\n");
  }
}
