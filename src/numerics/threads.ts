/**
 * Side-effect module: import it before anything imports `@jax-js/jax`.
 *
 * jax-js creates its wasm memory when it is first loaded, and only makes it shared (and runs
 * kernels on a worker pool) when `globalThis.Worker` exists, sizing the pool from
 * `navigator.hardwareConcurrency` — browser APIs that Node lacks. We provide both, over
 * `node:worker_threads`. The pool serves jax-js's async paths (`await x.data()`).
 * TBCM_THREADS=n > 1 installs the pool; the default, 1, keeps jax-js on the main thread.
 */
import { Worker as ThreadWorker } from "node:worker_threads";
import { threadCount } from "./threadCount.ts";
import { resolveObjectURL } from "node:buffer";

/**
 * The worker bootstrap: runs the worker script jax-js made as a browser worker would.
 * Blob URLs are per-thread in Node, so the Blob itself travels in `workerData`.
 */
const BOOTSTRAP = `
const { parentPort, workerData } = require("node:worker_threads");
globalThis.self = globalThis;
globalThis.postMessage = (data) => parentPort.postMessage(data);
workerData.source.text().then((source) => {
  (0, eval)(source);
  parentPort.on("message", (data) => self.onmessage({ data }));
});
`;

/** The part of the browser Worker API that jax-js's pool uses, over a worker thread. */
class NodeWorker {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  readonly #thread: ThreadWorker;
  #awaiting = 0;
  constructor(url: string | URL) {
    this.#thread = new ThreadWorker(BOOTSTRAP, { eval: true, workerData: { source: resolveObjectURL(String(url)) } });
    this.#thread.on("message", (data) => {
      // Each message jax-js posts is answered by exactly one reply.
      if (--this.#awaiting === 0) this.#thread.unref();
      this.onmessage?.({ data });
    });
    this.#thread.on("error", (err) => this.onerror?.({ message: err.message }));
    this.#thread.unref(); // an idle worker must not keep the process alive
  }
  postMessage(message: unknown): void {
    if (this.#awaiting++ === 0) this.#thread.ref(); // a pending reply must
    this.#thread.postMessage(message);
  }
  terminate(): void {
    void this.#thread.terminate();
  }
}

/** Number of threads jax-js was set up with in this process. */
export const jaxThreads = threadCount();

const g = globalThis as Record<string, unknown>;
if (jaxThreads > 1 && g.Worker === undefined) {
  g.Worker = NodeWorker;
  Object.defineProperty(globalThis, "navigator", {
    value: { ...(g.navigator as object | undefined), hardwareConcurrency: jaxThreads, userAgent: "Node.js" },
    configurable: true,
  });
}
