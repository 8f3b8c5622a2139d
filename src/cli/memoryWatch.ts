/**
 * A process that outgrows the machine's memory is killed by the kernel without a word (exit 137,
 * no checkpoint note): a teacher bundle of DiT-S size at 4 prompts × 15 pairs per step needs more
 * than 24 GB for its training step (bench/RESULTS.md §44). The CLI watches its own resident set and
 * stops first, with one line saying what to lower. The limit is the machine's memory, or the
 * container's (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`), or TBCM_MEMORY_LIMIT_MB.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { Worker } from "node:worker_threads";

/** The share of the limit at which the command stops (the rest is headroom for the sampling interval). */
const STOP_AT = 0.9;
const INTERVAL_MS = 100;

/** The memory this process may use, in bytes, and where that figure comes from. */
export function memoryLimit(env: NodeJS.ProcessEnv = process.env): { bytes: number; source: string } {
  const asked = env.TBCM_MEMORY_LIMIT_MB;
  if (asked !== undefined) {
    const mb = Number(asked);
    if (!(Number.isFinite(mb) && mb > 0)) throw new Error(`TBCM_MEMORY_LIMIT_MB must be a number of megabytes > 0, got "${asked}"`);
    return { bytes: mb * 2 ** 20, source: "TBCM_MEMORY_LIMIT_MB" };
  }
  let bytes = totalmem(), source = "the machine's memory";
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const n = Number(readFileSync(file, "utf8").trim()); // "max" (no limit) reads as NaN
      if (Number.isFinite(n) && n > 0 && n < bytes) [bytes, source] = [n, "the container's memory limit"];
    } catch {
      // not in a cgroup with that file
    }
  }
  return { bytes, source };
}

/**
 * Watches the resident set from a worker thread every INTERVAL_MS (the main thread may be busy for
 * minutes inside one onnxruntime run, where a timer of its own would never fire); past STOP_AT of
 * the limit the worker writes one line naming the sizes and `hint` (what to lower) to stderr, and
 * ends the process (SIGKILL: a signal handler of the main thread would wait for that run too).
 * The worker keeps no process alive; the returned function stops it.
 */
export function watchMemory(hint: string, limit = memoryLimit()): () => void {
  const worker = new Worker(WATCHER, { eval: true, workerData: { limit: limit.bytes, source: limit.source, hint, stopAt: STOP_AT, interval: INTERVAL_MS } });
  worker.unref();
  return () => void worker.terminate();
}

const WATCHER = `
const { workerData } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const { limit, source, hint, stopAt, interval } = workerData;
const size = (b) => (b >= 2 ** 30 ? (b / 2 ** 30).toFixed(1) + " GB" : Math.round(b / 2 ** 20) + " MB");
setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss > stopAt * limit) {
    writeSync(2, "tbcm: stopped before running out of memory: the process holds " + size(rss) + " of " + size(limit) + " (" + source + "); " + hint + "\\n");
    process.kill(process.pid, "SIGKILL");
  }
}, interval);
`;
