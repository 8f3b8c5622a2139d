#!/usr/bin/env node
// The `tbcm` command. Installed from the package it runs the compiled CLI (dist/, built by
// `npm run build`, which `prepare` runs on npm ci / npm pack). In a checkout with the TypeScript
// sources and tsx (a dev dependency) it runs src/ through tsx instead, so an edit never meets a
// stale build; TBCM_DIST=1 runs dist/ there too.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
const compiled = new URL("../dist/src/cli/main.js", import.meta.url);
let register;
if (existsSync(source) && process.env.TBCM_DIST !== "1") {
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    // no tsx: the compiled CLI below
  }
}
if (register) {
  register();
  await import(source.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  console.error("tbcm: dist/src/cli/main.js is missing: run `npm run build` (or `npm ci`, whose prepare step builds it)");
  process.exit(1);
}
