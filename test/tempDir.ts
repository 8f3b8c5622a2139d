/**
 * Scratch folders for tests, removed when the test process exits (a run of the suite made ~0.5 GB
 * of them in the system's temp folder, the packed tarball's install alone 324 MB, and left them
 * there). Set TBCM_KEEP_TEST_DIRS=1 to keep them for a look after a failure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

process.on("exit", () => {
  if (process.env.TBCM_KEEP_TEST_DIRS === "1") return;
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder under the system's temp folder, named `prefix` + random letters. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
