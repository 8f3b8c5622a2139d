/** `tbcm serve` answers every request, malformed or hostile, without crashing (issue 14). */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { mkdirSync, writeFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "node:http";
import { serveExport } from "../../src/cli/serve.ts";
import { tempDir } from "../tempDir.ts";

const dir = tempDir("tbcm-serve-");
const exportDir = join(dir, "export");
let server: Server;
let port: number;

before(async () => {
  mkdirSync(exportDir);
  writeFileSync(join(exportDir, "manifest.json"), '{"ok":true}');
  writeFileSync(join(dir, "secret.txt"), "secret");
  mkdirSync(join(exportDir, "sub"));
  writeFileSync(join(exportDir, "sub", "inner.json"), '{"inner":1}');
  symlinkSync(join(dir, "secret.txt"), join(exportDir, "leak.txt")); // a link out of the export
  symlinkSync(dir, join(exportDir, "updir")); // a folder link out of the export
  symlinkSync(join(exportDir, "sub", "inner.json"), join(exportDir, "alias.json")); // a link that stays inside
  symlinkSync(join(dir, "missing"), join(exportDir, "dangling.json"));
  server = await serveExport(exportDir, 0);
  port = (server.address() as { port: number }).port;
});
after(() => {
  server.close();
});

/** Sends raw bytes and returns the whole answer (the server closes or we time out). */
function raw(request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); resolve(Buffer.concat(chunks).toString("latin1")); }, 3000);
    socket.on("data", (c) => {
      chunks.push(c);
      // one complete answer is enough (keep-alive would otherwise hold the socket open)
      const text = Buffer.concat(chunks).toString("latin1");
      const head = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text);
      if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) { clearTimeout(timer); socket.destroy(); resolve(text); }
    });
    socket.on("end", () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString("latin1")); });
    socket.on("error", (e) => { clearTimeout(timer); reject(e); });
    socket.write(request);
  });
}
const status = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
const get = (target: string) => raw(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);

async function stillServes(): Promise<void> {
  const r = await fetch(`http://127.0.0.1:${port}/model/manifest.json`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { ok: true });
}

test("malformed request targets are 400s and the server keeps serving", async () => {
  for (const target of ["//", "//x/y", "http://x/..", "http://x/model/manifest.json", "*", "model/manifest.json", `/${"a".repeat(5000)}`, "/model/%ZZ"]) {
    const answer = await get(target);
    assert.ok([400, 404].includes(status(answer)), `${target.slice(0, 40)}: ${answer.slice(0, 80)}`);
    if (target !== "/model/%ZZ") assert.equal(status(answer), 400, target.slice(0, 40));
    await stillServes();
  }
});

test("NUL bytes, dot segments and encoded traversals are 404s", async () => {
  for (const target of ["/model/manifest.json%00", "/model/%00", "/model/../../package.json", "/model/%2e%2e/%2e%2e/package.json",
    "/model/..%2f..%2fpackage.json", "/model/%E0%A4%A", "/model/sub", "/model/", "/model/sub/../../secret.txt"]) {
    assert.equal(status(await get(target)), 404, target);
  }
  await stillServes();
});

test("symlinks that leave the export are not followed; one that stays inside is", async () => {
  for (const target of ["/model/leak.txt", "/model/updir/secret.txt", "/model/dangling.json"]) {
    assert.equal(status(await get(target)), 404, target);
  }
  const inside = await fetch(`http://127.0.0.1:${port}/model/alias.json`);
  assert.equal(inside.status, 200);
  assert.deepEqual(await inside.json(), { inner: 1 });
});

test("methods other than GET and HEAD are 405 with Allow; HEAD has headers and no body", async () => {
  for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
    const r = await fetch(`http://127.0.0.1:${port}/model/manifest.json`, { method, ...(method === "POST" || method === "PUT" || method === "PATCH" ? { body: "x" } : {}) });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.get("allow"), "GET, HEAD");
    await r.text();
  }
  const head = await raw("HEAD /model/manifest.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert.equal(status(head), 200);
  assert.match(head, /content-length: 11/i);
  assert.ok(head.endsWith("\r\n\r\n"), "no body");
  await stillServes();
});

test("garbage the HTTP parser rejects gets a 400, not a crash", async () => {
  for (const request of ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n", Buffer.from([0, 1, 2, 255, 13, 10, 13, 10]),
    `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20000)}\r\n\r\n`]) {
    const answer = await raw(request);
    assert.ok(answer === "" || status(answer) === 400, answer.slice(0, 80));
  }
  await stillServes();
});

test("the demo page and /ort/ files are served with the isolation headers", async () => {
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("cross-origin-embedder-policy"), "require-corp");
  await page.text();
  const ort = await fetch(`http://127.0.0.1:${port}/ort/ort.wasm.min.mjs`);
  assert.equal(ort.status, 200);
  assert.equal(ort.headers.get("content-type"), "text/javascript");
  await ort.arrayBuffer();
});
