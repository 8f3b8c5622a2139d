/** Prompt files: one prompt per line, blank lines and `#` comments ignored. */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/schema.ts";
import { shippedPath } from "../paths.ts";

/** A prompt as an error message shows it: control characters escaped, at most 60 characters. */
export function quotePrompt(text: string): string {
  const q = JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}…` : text);
  return q.replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

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
