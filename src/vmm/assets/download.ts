/**
 * @module vmm/assets/download
 * Fetching archive files over HTTP(S) for `aegis setup`: streamed to a
 * private temp file beside the destination while hashing, bounded in size
 * (a mirror is not trusted until the hash matches), with progress about
 * every 10% and a 60 s stall timeout. Only a complete file whose sha256 (and
 * size) match is renamed into place, so a failed or tampered download
 * leaves nothing behind.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";

/** What a download must turn out to be. */
export interface Expect {
  sha256?: string;
  size?: number;
  /** Refuse to read past this many bytes (defaults to `size`). */
  maxBytes: number;
}

const STALL_MS = 60_000;

/** GET `url` into memory, bounded by `maxBytes`; throws on a non-200 answer. */
export async function fetchBytes(url: string, maxBytes: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  await stream(url, maxBytes, (chunk) => {
    parts.push(chunk);
    total += chunk.length;
  });
  return Buffer.concat(parts, total);
}

/** GET `url`, feeding chunks to `onChunk`; returns the byte count. Throws past `maxBytes` or on a stall. */
async function stream(url: string, maxBytes: number, onChunk: (c: Uint8Array) => void): Promise<number> {
  const ac = new AbortController();
  let timer = setTimeout(() => ac.abort(), STALL_MS);
  try {
    const res = await fetch(url, { signal: ac.signal, redirect: "follow" });
    if (res.status !== 200 || !res.body) throw new HttpError(url, res.status);
    let total = 0;
    for await (const chunk of res.body) {
      clearTimeout(timer);
      timer = setTimeout(() => ac.abort(), STALL_MS);
      total += chunk.length;
      if (total > maxBytes) throw new Error(`${url}: more than ${maxBytes} bytes; refusing the rest`);
      onChunk(chunk);
    }
    return total;
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`${url}: no data for ${STALL_MS / 1000} s\nhint: check the network or AEGIS_DEBIAN_MIRROR`);
    if (err instanceof HttpError || (err instanceof Error && err.message.startsWith(url))) throw err;
    throw new Error(`${url}: ${err instanceof Error ? err.message : String(err)}\nhint: check the network or set AEGIS_DEBIAN_MIRROR to a reachable Debian mirror`);
  } finally {
    clearTimeout(timer);
  }
}

/** A non-200 HTTP answer (404 lets callers try the next index compression). */
export class HttpError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
  ) {
    super(`${url}: HTTP ${status}`);
    this.name = "HttpError";
  }
}

/** Human size, e.g. "26.7 MB". */
export function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Download `url` to `dest`, verifying `expect`. `label` names the file in
 * progress and errors (e.g. the .deb name).
 */
export async function downloadVerified(url: string, dest: string, expect: Expect, label: string, progress: (msg: string) => void): Promise<void> {
  const part = `${dest}.part-${process.pid}-${Date.now()}`;
  const fd = openSync(part, "wx", 0o644);
  const hash = new Bun.CryptoHasher("sha256");
  let got = 0;
  let nextReport = 0.1;
  let ok = false;
  try {
    progress(`downloading ${label}${expect.size ? ` (${mb(expect.size)})` : ""} from ${url}`);
    await stream(url, expect.maxBytes, (chunk) => {
      writeSync(fd, chunk);
      hash.update(chunk);
      got += chunk.length;
      if (expect.size && got / expect.size >= nextReport && got < expect.size) {
        progress(`  ${label}: ${mb(got)} / ${mb(expect.size)} (${Math.floor((got / expect.size) * 100)}%)`);
        while (got / expect.size >= nextReport) nextReport += 0.1;
      }
    });
    const sum = hash.digest("hex");
    if (expect.size !== undefined && got !== expect.size) throw new Error(`${label}: size mismatch: expected ${expect.size} bytes, got ${got} (from ${url})\nhint: the mirror is inconsistent or tampered with; nothing was installed`);
    if (expect.sha256 && sum !== expect.sha256) throw new Error(`${label}: sha256 mismatch: expected ${expect.sha256}, got ${sum} (from ${url})\nhint: the mirror is inconsistent or tampered with; nothing was installed`);
    closeSync(fd);
    renameSync(part, dest);
    ok = true;
  } finally {
    if (!ok) {
      try {
        closeSync(fd);
      } catch (err) {
        // Already closed on the success path just before a failed rename.
        if ((err as NodeJS.ErrnoException).code !== "EBADF") throw err;
      }
      rmSync(part, { force: true });
    }
  }
}
