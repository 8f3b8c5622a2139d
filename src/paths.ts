/**
 * Files that ship with the package (models/, prompts/, configs/, web/) when tbcm runs from
 * another folder, e.g. installed as a dependency. Paths in configs and options are relative to
 * the current folder; a relative path that does not exist there but names one of the package's
 * own files (`models/fmnist/teacher.safetensors`, `prompts/eval.txt`, `configs/fmnist-tbcm.yaml`)
 * reads the package's file. So the library defaults and the shipped configs work from any folder,
 * and a file of the user's own with the same relative path takes precedence.
 */
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/** The package's folder: the nearest folder above this module with a package.json (src/ and dist/src/ alike). */
export function packageRoot(): string {
  if (root === undefined) {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
    root = dir;
  }
  return root;
}

/** `path` itself when it exists (or is absolute, or is nowhere), else the package's file of that relative path. */
export function shippedPath(path: string): string {
  if (!path || isAbsolute(path) || existsSync(path)) return path;
  const own = join(packageRoot(), path);
  return existsSync(own) ? own : path;
}
