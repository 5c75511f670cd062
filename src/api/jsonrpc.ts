/**
 * @module api/jsonrpc
 * JSON-RPC 2.0 framing shared by the host control channel and the guest
 * harness: one JSON object per line (NDJSON). JSON.stringify never emits a raw
 * newline (it escapes them inside strings), so a line is always a whole
 * message. This module is deliberately dependency-free because the harness
 * imports it on its boot path.
 */

/** A JSON-RPC error object. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** Any JSON-RPC 2.0 message, loosely typed (validated by the receiver). */
export interface RpcMessage {
  jsonrpc: "2.0";
  id?: number | string | null;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: RpcErrorObject;
}

/** Error raised on the caller's side when the peer answers with a JSON-RPC error. */
export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** Encode one message as a line (with the trailing newline). */
export function encodeMessage(msg: RpcMessage): string {
  return `${JSON.stringify(msg)}\n`;
}

/** Build a request line. */
export function request(id: number | string, method: string, params?: unknown): string {
  return encodeMessage(params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params });
}

/** Build a notification line. */
export function notification(method: string, params?: unknown): string {
  return encodeMessage(params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params });
}

/** Build a success response line. */
export function response(id: number | string | null, result: unknown): string {
  return encodeMessage({ jsonrpc: "2.0", id, result });
}

/** Build an error response line. */
export function errorResponse(id: number | string | null, error: RpcErrorObject): string {
  return encodeMessage({ jsonrpc: "2.0", id, error });
}

/** Options of a {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept, in bytes without the newline (default {@link DEFAULT_MAX_LINE_BYTES}). */
  maxLineBytes?: number;
  /** Called once per over-long line, when it crosses the limit (the rest of it is then skipped unbuffered). */
  onOverlong?: () => void;
}

/** Default line limit; each channel chooses its own (see the module docs of its owner). */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

/**
 * Splits a byte stream into lines. Bytes are buffered until a newline, then
 * decoded as UTF-8 as a whole line, so a multi-byte character split across two
 * reads is never corrupted.
 *
 * Bounded: a line longer than `maxLineBytes` is dropped. The bytes buffered
 * so far are released the moment the limit is crossed, every further byte
 * up to the next newline is skipped without being kept, and the stream
 * resynchronises at that newline. So a peer writing gigabytes without a
 * newline costs at most `maxLineBytes` of memory, and the messages after its
 * newline still arrive. Drops are counted (`overlongLines`, `discardedBytes`)
 * and announced once per line through `onOverlong`.
 */
export class LineSplitter {
  private parts: Uint8Array[] = [];
  private partsLength = 0;
  private discarding = false;
  private readonly maxLineBytes: number;
  private readonly onOverlong?: () => void;
  /** Lines dropped for being longer than the limit. */
  overlongLines = 0;
  /** Bytes of dropped lines (buffered ones released plus skipped ones). */
  discardedBytes = 0;

  /** `opts` may be the line limit alone. */
  constructor(opts: number | LineSplitterOptions = {}) {
    const o = typeof opts === "number" ? { maxLineBytes: opts } : opts;
    this.maxLineBytes = o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.onOverlong = o.onOverlong;
  }

  /** Forget a partial line (its stream ended: what follows comes from a new one). */
  reset(): void {
    this.parts = [];
    this.partsLength = 0;
    this.discarding = false;
  }

  /** Feed bytes; returns the complete lines they finish (without the newline, empty and over-long lines skipped). */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.discarding) {
        this.discardedBytes += piece.length;
        this.discarding = false;
        continue;
      }
      if (this.partsLength + piece.length > this.maxLineBytes) {
        this.overlong(piece.length);
        this.discarding = false;
        continue;
      }
      let bytes: Uint8Array;
      if (this.partsLength > 0) {
        bytes = concat([...this.parts, piece], this.partsLength + piece.length);
        this.parts = [];
        this.partsLength = 0;
      } else {
        bytes = piece;
      }
      const line = decoder.decode(bytes).trim();
      if (line.length > 0) lines.push(line);
    }
    if (start < chunk.length) {
      const restLength = chunk.length - start;
      if (this.discarding) {
        this.discardedBytes += restLength;
      } else if (this.partsLength + restLength > this.maxLineBytes) {
        this.overlong(restLength);
      } else {
        // A copy, always: on a Buffer `slice` is a view, and readers reuse their buffer (guest/harness/port.ts), so
        // a view of a partial line would be overwritten by the next read (lost messages at read boundaries).
        this.parts.push(Uint8Array.prototype.slice.call(chunk, start));
        this.partsLength += restLength;
      }
    }
    return lines;
  }

  /** Drop the line being assembled (plus `more` bytes of it seen now) and skip to its newline. */
  private overlong(more: number): void {
    this.discardedBytes += this.partsLength + more;
    this.parts = [];
    this.partsLength = 0;
    this.discarding = true;
    this.overlongLines++;
    this.onOverlong?.();
  }
}

const decoder = new TextDecoder();

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Parse one line into a message. Returns an error object (JSON-RPC parse or
 * invalid-request error) instead of throwing, so the receiver can answer it.
 */
export function parseMessage(line: string): RpcMessage | RpcErrorObject {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { code: -32700, message: `parse error: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || (value as RpcMessage).jsonrpc !== "2.0") {
    return { code: -32600, message: "invalid request: expected a JSON-RPC 2.0 object" };
  }
  return value as RpcMessage;
}

/** True when `parseMessage` returned an error rather than a message. */
export function isParseFailure(x: RpcMessage | RpcErrorObject): x is RpcErrorObject {
  return !("jsonrpc" in x);
}
