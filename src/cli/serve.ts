/**
 * `tbcm serve`: a local static server for trying an export in a browser — the demo page and
 * runtime module from web/, onnxruntime-web's files under /ort/, the export under /model/. It
 * sends the cross-origin isolation headers so that onnxruntime-web may use threads.
 *
 * It answers every request and never crashes on one: a request target it cannot read is a 400,
 * a method other than GET/HEAD a 405 (with `Allow`), a file that is missing, a folder, outside
 * its root or reached through a symlink that leaves its root a 404, and anything unexpected a 500.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, sep } from "node:path";
import { packageRoot } from "../paths.ts";

const WEB = join(packageRoot(), "web"); // src/cli/ and dist/src/cli/ alike
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".map": "application/json",
};
/** Longer request paths are refused (400) before any file-system call: no file served here has a longer one. */
const MAX_PATH = 1024;

/** onnxruntime-web's dist folder, or an error saying how to get it. */
function ortWebDist(): string {
  try {
    // its main entry lies in dist/ (its package.json is not exported)
    return dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  } catch {
    throw new Error("tbcm serve needs onnxruntime-web: npm install onnxruntime-web");
  }
}

/**
 * The file under `root` (a real path, no symlinks) that `rest` names, or undefined: missing, a
 * folder, a malformed %-escape, a NUL byte, outside `root` by name, or outside `root` once
 * symlinks are resolved.
 */
function inside(root: string, rest: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return undefined; // a malformed %-escape
  }
  if (decoded.includes("\0")) return undefined;
  const path = normalize(join(root, decoded));
  const prefix = root.endsWith(sep) ? root : root + sep;
  if (!path.startsWith(prefix)) return undefined;
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return undefined; // missing (or a dangling link)
  }
  if (!real.startsWith(prefix) || !statSync(real).isFile()) return undefined;
  return real;
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers }).end(`${text}\n`);
}

/** Starts the server on `port` (0: any free one); resolves once it listens. */
export function serveExport(exportDir: string, port: number, host = "127.0.0.1"): Promise<Server> {
  if (!existsSync(join(exportDir, "manifest.json"))) throw new Error(`no manifest.json in "${exportDir}": pass a directory written by tbcm export`);
  // real paths, so that the symlink check compares like with like
  const roots: [string, string][] = [["/model/", realpathSync(exportDir)], ["/ort/", realpathSync(ortWebDist())], ["/", realpathSync(WEB)]];
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== "GET" && req.method !== "HEAD") return plain(res, 405, "method not allowed", { allow: "GET, HEAD" });
    const target = req.url ?? "/";
    // only origin-form targets ("/path?query"): not "//x" (a scheme-relative URL), "http://x/…", "*" or "x"
    if (!target.startsWith("/") || target.startsWith("//") || target.length > MAX_PATH) return plain(res, 400, "bad request target");
    let pathname: string;
    try {
      pathname = new URL(target, "http://localhost").pathname;
    } catch {
      return plain(res, 400, "bad request target");
    }
    if (pathname === "/") pathname = "/index.html";
    const hit = roots.find(([prefix]) => pathname.startsWith(prefix));
    const file = hit && inside(hit[1], pathname.slice(hit[0].length));
    if (!file) return plain(res, 404, "not found");
    const body = readFileSync(file);
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": String(body.length),
      "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp",
    }).end(req.method === "HEAD" ? undefined : body);
  };
  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      if (!res.headersSent) plain(res, 500, "internal error");
      else res.destroy();
      process.stderr.write(`tbcm serve: ${req.method} ${JSON.stringify(req.url)}: ${(e as Error).message}\n`);
    }
  });
  // a request the HTTP parser cannot read (an over-long header, a bad method, …) gets a 400, not a crash
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
