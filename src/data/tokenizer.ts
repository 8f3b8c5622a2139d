/**
 * A word-level tokenizer over a fixed vocabulary: lower-cases, splits on spaces and keeps
 * hyphenated words whole. Id 0 pads, 1 is for unknown words. Small on purpose: the default text
 * encoder only needs the caption language of its data set.
 */
export const PAD = 0;
export const UNKNOWN = 1;

export type Tokenizer = { readonly vocab: readonly string[]; readonly index: ReadonlyMap<string, number> };

export function words(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9-]+/).filter(Boolean);
}

/** Builds the vocabulary of a corpus, in first-seen order after the two special tokens. */
export function buildTokenizer(corpus: readonly string[]): Tokenizer {
  const vocab = ["<pad>", "<unk>"];
  const index = new Map<string, number>();
  for (const text of corpus) for (const w of words(text)) if (!index.has(w)) index.set(w, vocab.push(w) - 1);
  return { vocab, index };
}

/** Token ids of a text, padded to `length`; longer texts are an error naming the limit. */
export function encode(tok: Tokenizer, text: string, length: number): Int32Array {
  const ids = words(text).map((w) => tok.index.get(w) ?? UNKNOWN);
  if (ids.length > length) throw new Error(`"${text}" has ${ids.length} words; the text encoder takes at most ${length}`);
  const out = new Int32Array(length);
  out.set(ids);
  return out;
}

/** Whether a text has a word the tokenizer knows (else it reads as the empty prompt, or as <unk>s only). */
export function hasKnownWord(tok: Tokenizer, text: string): boolean {
  return words(text).some((w) => tok.index.has(w));
}

/** Words of a text that the tokenizer does not know. */
export function unknownWords(tok: Tokenizer, text: string): string[] {
  return words(text).filter((w) => !tok.index.has(w));
}

export function decode(tok: Tokenizer, ids: ArrayLike<number>): string {
  return Array.from(ids).filter((id) => id !== PAD).map((id) => tok.vocab[id] ?? "<unk>").join(" ");
}

/** The tokenizer of a stored vocabulary (as written with a text encoder's weights). */
export function buildTokenizerFromVocab(vocab: readonly string[]): Tokenizer {
  return { vocab, index: new Map(vocab.map((w, i) => [w, i] as const).filter(([, i]) => i > UNKNOWN)) };
}
