/**
 * @module daemon/images/bounded-read
 * Reading documents from a registry (or a file) without trusting their size.
 * A body is streamed chunk by chunk and abandoned (the connection cancelled)
 * as soon as it passes the limit, so a registry that sends a chunked manifest
 * of gigabytes costs the host at most the limit plus one chunk of memory.
 * `Content-Length` is only a shortcut to refuse early: chunked bodies have none.
 */
import { open } from "node:fs/promises";
import { RegistryError } from "./errors.ts";
import { formatSize } from "./limits.ts";

/** Read a response body of at most `max` bytes; larger ones fail with "`what` is larger than N". */
export async function readBounded(res: Response, max: number, what: string, hint?: string): Promise<Uint8Array> {
  const tooLarge = () => new RegistryError(`${what} is larger than ${formatSize(max)}`, hint ?? "the source sent more than any real image document needs; the pull was aborted");
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const { bytes, truncated } = await readPrefix(res, max);
  if (truncated) throw tooLarge();
  return bytes;
}

/** The first `max` bytes of a body (the rest is cancelled), for error messages. */
export async function readPrefix(res: Response, max: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  if (!res.body) return { bytes: new Uint8Array(0), truncated: false };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.byteLength > max) {
        chunks.push(value.subarray(0, max - size));
        size = max;
        truncated = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    if (truncated) await reader.cancel();
    reader.releaseLock();
  }
  return { bytes: Buffer.concat(chunks, size), truncated };
}

/** The start of an error body as text (at most `max` bytes, `...` when cut). */
export async function readErrorText(res: Response, max: number): Promise<string> {
  const { bytes, truncated } = await readPrefix(res, max);
  return new TextDecoder().decode(bytes) + (truncated ? "..." : "");
}

/** Read a file of at most `max` bytes (checked before reading). */
export async function readFileBounded(path: string, max: number, what: string, hint?: string): Promise<Uint8Array> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size > max) throw new RegistryError(`${what} is ${formatSize(size)}, larger than ${formatSize(max)}`, hint ?? "no real image document is that large; the image is refused");
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
