/**
 * @module daemon/router/front-bytes
 * The byte-level helpers of the router front (http-front.ts): joining a
 * rewritten head with the body bytes behind it, and framing the router's own
 * error answers as HTTP/1.1. Kept apart so the connection modules deal in
 * exchanges, not in buffer arithmetic. Every function here is pure except
 * joinHeadForWrite, whose result is valid until its next call (a response
 * head and its first body bytes are written at once and never kept, so one
 * buffer serves them all).
 */
import { STATUS_CODES } from "node:http";
import type { AppError } from "../../api/errors.ts";

/** `a` (may be null or empty) followed by `b`, always in a buffer the router owns. */
export function concat(a: Buffer | null, b: Uint8Array): Buffer {
  return a && a.length > 0 ? Buffer.concat([a, b]) : Buffer.from(b);
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * A head ready to write: the string itself when it is ASCII (its length is
 * then its byte count, which the queued writes rely on), else its latin1 bytes.
 */
export function headBytes(head: string): Buffer | string {
  return ASCII.test(head) ? head : Buffer.from(head, "latin1");
}

/** A head (latin1 text) and the body bytes after it, in one buffer: one write, one syscall, one packet. */
export function joinHead(head: string, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, "latin1");
  out.set(body, head.length);
  return out;
}

/** The buffer {@link joinHeadForWrite} reuses: heads and first body bytes up to this size. */
const SCRATCH = Buffer.allocUnsafe(16 * 1024);

/**
 * {@link joinHead} into a buffer reused from call to call, for bytes written
 * at once and never kept: writeQueued (queued-writes.ts) copies whatever the
 * socket does not take before it returns. Saves an allocation (and the GC
 * work for it) per response; larger ones get a buffer of their own.
 */
export function joinHeadForWrite(head: string, body: Uint8Array): Buffer {
  const n = head.length + body.length;
  if (n > SCRATCH.length) return joinHead(head, body);
  SCRATCH.write(head, 0, "latin1");
  SCRATCH.set(body, head.length);
  return SCRATCH.subarray(0, n);
}

/** The HTTP/1.1 bytes of one of the router's own error answers (`close`: say the connection closes after it). */
export function errorBytes(err: AppError, close: boolean): Buffer {
  const body = JSON.stringify(err.toJSON());
  const head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\ncontent-type: application/json;charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? "connection: close\r\n" : ""}\r\n`;
  return Buffer.from(head + body);
}
