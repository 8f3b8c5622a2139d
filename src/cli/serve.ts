/**
 * `tbcm serve`: a local static server for trying an export in a browser — the demo page and
 * runtime module from web/, onnxruntime-web's files under /ort/, the export under /model/. It
 * sends the cross-origin isolation headers so that onnxruntime-web may use threads.
 */
import { createServer, type Server } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, sep } from "node:path";
import { packageRoot } from "../paths.ts";

const WEB = join(packageRoot(), "web"); // src/cli/ and dist/src/cli/ alike
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".map": "application/json",
};

/** onnxruntime-web's dist folder, or an error saying how to get it. */
function ortWebDist(): string {
  try {
    // its main entry lies in dist/ (its package.json is not exported)
    return dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  } catch {
    throw new Error("tbcm serve needs onnxruntime-web: npm install onnxruntime-web");
  }
}

/** The file under `root` that `rest` names, or undefined (missing, a folder, or outside `root`). */
function inside(root: string, rest: string): string | undefined {
  let path: string;
  try {
    path = normalize(join(root, decodeURIComponent(rest)));
  } catch {
    return undefined; // a malformed %-escape
  }
  if (!path.startsWith(normalize(root + sep)) || !existsSync(path) || !statSync(path).isFile()) return undefined;
  return path;
}

/** Starts the server on `port` (0: any free one); resolves once it listens. */
export function serveExport(exportDir: string, port: number, host = "127.0.0.1"): Promise<Server> {
  if (!existsSync(join(exportDir, "manifest.json"))) throw new Error(`no manifest.json in "${exportDir}": pass a directory written by tbcm export`);
  const roots: [string, string][] = [["/model/", exportDir], ["/ort/", ortWebDist()], ["/", WEB]];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const pathname = url.pathname === "/" ? "/index.html" : url.pathname;
    const hit = roots.find(([prefix]) => pathname.startsWith(prefix));
    const file = hit && inside(hit[1], pathname.slice(hit[0].length));
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp",
    }).end(readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
