/**
 * Natural-language captions for Fashion-MNIST classes: per class a few names (synonyms), and
 * sentence templates. Training captions use the training templates; evaluation captions use
 * held-out templates (phrasings never seen in training) with the same names, so that prompt
 * accuracy measures following the prompt, not memorising strings.
 */
import { FASHION_CLASSES } from "./fashionMnist.ts";

/** Names of each class, in label order. */
export const CLASS_NAMES: readonly (readonly string[])[] = [
  ["t-shirt", "tee", "top", "short-sleeved top"],
  ["trousers", "pants", "pair of trousers", "slacks"],
  ["pullover", "sweater", "jumper", "knit sweater"],
  ["dress", "frock", "summer dress", "gown"],
  ["coat", "jacket", "winter coat", "overcoat"],
  ["sandal", "open shoe", "summer sandal", "strappy sandal"],
  ["shirt", "button-up shirt", "blouse", "collared shirt"],
  ["sneaker", "running shoe", "trainer", "sports shoe"],
  ["bag", "handbag", "purse", "tote bag"],
  ["ankle boot", "boot", "short boot", "leather boot"],
];

/** `{}` is replaced by a class name. */
export const TRAIN_TEMPLATES = [
  "{}", "a {}", "a photo of a {}", "a picture of a {}", "an image of a {}", "a product photo of a {}",
  "a grey photo of a {}", "a small image of a {}", "a {} on a black background", "a centred {}",
];
export const EVAL_TEMPLATES = ["a photograph showing a {}", "one {}", "a catalogue image of a {}", "this is a {}"];

/** "a" → "an" before a vowel sound. */
function article(text: string): string {
  return text.replace(/\ba ([aeiou])/g, "an $1");
}

export function caption(template: string, name: string): string {
  return article(template.replace("{}", name));
}

/** Every caption of a class with the given templates. */
export function classCaptions(label: number, templates: readonly string[]): string[] {
  if (!(label >= 0 && label < FASHION_CLASSES.length)) throw new Error(`no Fashion-MNIST class ${label}`);
  return templates.flatMap((t) => CLASS_NAMES[label].map((n) => caption(t, n)));
}

/** All (caption, label) pairs of a split of phrasings, class-major. */
export function captionSet(templates: readonly string[]): { caption: string; label: number }[] {
  return CLASS_NAMES.flatMap((_, label) => classCaptions(label, templates).map((c) => ({ caption: c, label })));
}

/**
 * The class a caption asks for: the class whose longest name occurs in it as whole words;
 * −1 when no class name occurs. Two classes matching equally well is an error naming them.
 */
export function captionLabel(text: string): number {
  const w = ` ${text.toLowerCase().split(/[^a-z0-9-]+/).filter(Boolean).join(" ")} `;
  let best = -1, bestLength = 0, tie = -1;
  CLASS_NAMES.forEach((names, label) => {
    for (const name of names) {
      if (!w.includes(` ${name} `)) continue;
      if (name.length > bestLength) [best, bestLength, tie] = [label, name.length, -1];
      else if (name.length === bestLength && label !== best) tie = label;
    }
  });
  if (tie >= 0) throw new Error(`"${text}" names both ${FASHION_CLASSES[best]} and ${FASHION_CLASSES[tie]}`);
  return best;
}
