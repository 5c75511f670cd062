/**
 * @module api/untrusted-text
 * Text a guest chose (a frame type, a parse error quoting its input, a tool
 * argument) on its way into a log line. Every such string goes through
 * {@link clip}: it is cut to a few hundred characters *before* any other
 * work, so a 4 MB string costs the same as a short one, and control
 * characters, DEL, C1 controls, line/paragraph separators and bidi
 * overrides are escaped, so a guest can neither forge extra log lines nor
 * hide text from whoever reads the log in a terminal. Dependency-free: the
 * guest harness uses it too.
 */

/** Characters kept of one guest string in a log line (default of {@link clip}). */
export const LOG_TEXT_MAX = 200;

// C0 controls, DEL, C1 controls, LS/PS, bidi embeddings/overrides/isolates, BOM.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * `value` as a short, single-line, printable string: non-strings are named
 * by type (never serialised: an object could be huge), strings are cut to
 * `max` characters (the cut says how much was left out) and unsafe
 * characters become `\xNN` / `\uNNNN` escapes.
 */
export function clip(value: unknown, max = LOG_TEXT_MAX): string {
  let s: string;
  if (typeof value === "string") s = value;
  else if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") s = String(value);
  else if (value === null) s = "null";
  else if (value === undefined) s = "undefined";
  else return `(${Array.isArray(value) ? "array" : typeof value})`;
  const head = s.length > max ? s.slice(0, max) : s;
  let out = head.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
  // Escapes lengthen the text; keep the promise of at most ~max characters, never cutting an escape in half.
  if (out.length > max) out = out.slice(0, max).replace(/\\(x[0-9a-f]?|u[0-9a-f]{0,3})?$/, "");
  return s.length > max ? `${out}...(+${s.length - max} chars)` : out;
}
