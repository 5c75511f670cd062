/**
 * @module gateway/split
 * Splitting long answers into Telegram-sized messages. Cuts prefer the last
 * newline, then the last space, in the second half of the window, and never
 * fall between the two halves of a surrogate pair. Because each cut depends
 * only on the text before it, the pieces of a growing (streamed) text stay
 * put: earlier messages are not reshuffled as later text arrives.
 */
import { TELEGRAM_TEXT_LIMIT } from "./telegram.ts";

/** Split `text` into pieces of at most `limit` UTF-16 code units (Telegram counts those). */
export function splitMessage(text: string, limit = TELEGRAM_TEXT_LIMIT): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    const window = rest.slice(0, limit + 1);
    let cut = window.lastIndexOf("\n", limit);
    let skip = 1;
    if (cut < limit / 2) {
      cut = window.lastIndexOf(" ", limit);
      if (cut < limit / 2) {
        cut = limit;
        skip = 0;
        const code = rest.charCodeAt(cut - 1);
        if (code >= 0xd800 && code <= 0xdbff) cut--;
      }
    }
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut + skip);
  }
  if (rest.length > 0 || out.length === 0) out.push(rest);
  return out;
}
