/** Prompt files: one prompt per line, blank lines and `#` comments ignored. */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/schema.ts";
import { shippedPath } from "../paths.ts";

export function readPromptFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(shippedPath(path), "utf8");
  } catch {
    throw new ConfigError(`cannot read prompt file "${path}": check prompts_file in the config`);
  }
  const prompts = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (prompts.length === 0) throw new ConfigError(`prompt file "${path}" has no prompts: write one prompt per line`);
  return prompts;
}
