/**
 * @module api/log-chunks
 * The payload codec of output log lines (`LogLine` in schema/tasks.ts): bytes
 * travel as `text` when they are valid UTF-8 and as base64 `data` otherwise.
 * The daemon encodes with it; the CLI decodes with it.
 */

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Encode bytes as `text` when they are valid UTF-8, else as base64 `data`. */
export function encodeChunk(bytes: Uint8Array): { text?: string; data?: string } {
  try {
    return { text: strictUtf8.decode(bytes) };
  } catch {
    return { data: Buffer.from(bytes).toString("base64") };
  }
}

/** Decode a log line's payload back to bytes. */
export function chunkBytes(line: { text?: string; data?: string }): Buffer {
  return line.text !== undefined ? Buffer.from(line.text, "utf8") : Buffer.from(line.data ?? "", "base64");
}
