/**
 * @module daemon/router/http1
 * The little of HTTP/1.1 the raw router front needs (http-front.ts): find and
 * parse one message head, and follow a message body's framing (RFC 9112
 * section 6: Content-Length, chunked, or until close) so the front knows
 * where one message ends and the next begins. Bodies are never decoded or
 * copied: the framers only count bytes and read chunk-size lines.
 *
 * Parsing is strict on purpose. Anything unusual in a request head (bare LF,
 * obs-fold, a missing or repeated Host, both Content-Length and
 * Transfer-Encoding, HTTP/1.0, absolute-form targets, dot segments) makes
 * {@link parseRequestHead} return null, and the front hands the connection to
 * Bun.serve, whose parser then decides; so two parsers never disagree about
 * where a request ends (no request smuggling through the front).
 */

/** Longest message head accepted (request or response), bytes. */
export const MAX_HEAD = 64 * 1024;

/** One header line: name as sent, value, and the name lowercased. */
export type HeaderLine = [name: string, value: string, lower: string];

/** A parsed request head the front may proxy itself. */
export interface RequestHead {
  method: string;
  /** Origin-form target, as sent. */
  target: string;
  headers: HeaderLine[];
  host: string;
  /** Body framing: a byte count, or chunked. */
  body: { kind: "length"; length: number } | { kind: "chunked" };
  /** The client asked to close the connection after this exchange. */
  close: boolean;
  /** The tokens of its `Connection` headers, lowercased. */
  connection: Set<string>;
}

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  reason: string;
  headers: HeaderLine[];
  /** The upstream will close after this response (HTTP/1.0 or `Connection: close`). */
  close: boolean;
  /** The tokens of its `Connection` headers, lowercased. */
  connection: Set<string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII only: no spaces, controls or bytes above 0x7e in a target. */
const TARGET = /^\/[\x21-\x7e]*$/;
/** A field value: visible ASCII, spaces, tabs and obs-text; no CR, LF or NUL. */
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/**
 * A whole head in one pass: a start line, then CRLF-separated `token:value`
 * lines (no whitespace before the colon, no obs-fold, no control characters,
 * no CR or LF outside a CRLF). Linear: a value can never contain the CR that
 * starts the next line.
 */
const HEAD = /^[\t\x20-\x7e\x80-\xff]*(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*$/;
const CRLFCRLF = Buffer.from("\r\n\r\n");

/** Index just past the `\r\n\r\n` that ends the head at the start of `buf`, or -1. */
export function headEnd(buf: Buffer): number {
  const i = buf.indexOf(CRLFCRLF);
  return i < 0 ? -1 : i + 4;
}

/** Split a head (without its final CRLFCRLF) into its start line and header lines; null when malformed. */
/**
 * Strip HTTP's optional whitespace (space and tab only, RFC 9110 OWS). Never
 * String.prototype.trim: it also strips U+00A0 and other Unicode spaces, which
 * a latin1-decoded head holds for byte 0xA0, so `Transfer-Encoding: chunked\xa0`
 * would frame as chunked here while the guest's server reads something else
 * (request smuggling).
 */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function splitHead(text: string): { start: string; headers: HeaderLine[] } | null {
  // Bare LF line ends and folded lines are how requests get smuggled: such a head is refused whole.
  if (!HEAD.test(text)) return null;
  const lines = text.split("\r\n");
  const headers: HeaderLine[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    headers.push([name, trimOws(line.slice(colon + 1)), name.toLowerCase()]);
  }
  return { start: lines[0]!, headers };
}

const NO_TOKENS: ReadonlySet<string> = new Set();

/** The comma-separated tokens of every `Connection` header, lowercased (a shared empty set when there is none). */
export function connectionTokens(headers: HeaderLine[]): Set<string> {
  let out: Set<string> | undefined;
  for (const [, v, n] of headers) {
    if (n !== "connection") continue;
    out ??= new Set();
    for (const t of v.split(",")) out.add(trimOws(t).toLowerCase());
  }
  return (out ?? NO_TOKENS) as Set<string>;
}

/** The value of header `lower` (a lowercase name), the first when repeated, or null. */
export function headerValue(headers: HeaderLine[], lower: string): string | null {
  for (const h of headers) if (h[2] === lower) return h[1];
  return null;
}

/** True when a target's path holds a `.` or `..` segment (escaped or not), which Bun.serve would resolve. */
function hasDotSegment(target: string): boolean {
  const q = target.indexOf("?");
  const path = (q < 0 ? target : target.slice(0, q)).toLowerCase().replaceAll("%2e", ".");
  return /\/\.\.?(\/|$)/.test(path);
}

/**
 * Parse a request head the front can proxy itself (text up to, without, the
 * final CRLFCRLF, decoded as latin1). Null means "let Bun.serve have this
 * connection": malformed, unusual, or an upgrade.
 */
export function parseRequestHead(text: string): RequestHead | null {
  const split = splitHead(text);
  if (!split) return null;
  const parts = split.start.split(" ");
  if (parts.length !== 3 || parts[2] !== "HTTP/1.1") return null;
  const [method, target] = parts as [string, string];
  if (!TOKEN.test(method) || method === "CONNECT" || !TARGET.test(target) || hasDotSegment(target)) return null;
  let host: string | undefined;
  let length: string | undefined;
  let te: string | undefined;
  for (const [, v, lower] of split.headers) {
    if (lower === "host") {
      if (host !== undefined) return null;
      host = v;
    } else if (lower === "content-length") {
      if (length !== undefined || !/^\d{1,15}$/.test(v)) return null;
      length = v;
    } else if (lower === "transfer-encoding") {
      if (te !== undefined) return null;
      te = v.toLowerCase();
    } else if (lower === "upgrade") return null;
  }
  if (host === undefined || host === "") return null;
  if (te !== undefined && (te !== "chunked" || length !== undefined)) return null;
  const body = te !== undefined ? ({ kind: "chunked" } as const) : ({ kind: "length", length: length === undefined ? 0 : Number(length) } as const);
  const connection = connectionTokens(split.headers);
  return { method, target, headers: split.headers, host, body, close: connection.has("close"), connection };
}

/** Parse a response head; null when malformed (the upstream broke the protocol). */
export function parseResponseHead(text: string): ResponseHead | null {
  const split = splitHead(text);
  if (!split) return null;
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(split.start);
  if (!m || !VALUE.test(m[3] ?? "")) return null;
  const connection = connectionTokens(split.headers);
  return { status: Number(m[2]), reason: m[3] ?? "", headers: split.headers, close: m[1] === "0" ? !connection.has("keep-alive") : connection.has("close"), connection };
}

/** How a response body is delimited, or an error for contradictory framing. */
export function responseFraming(head: ResponseHead, requestMethod: string): BodyFramer | "close" | Error {
  if (requestMethod === "HEAD" || head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200)) return new LengthFramer(0);
  let te: string | undefined;
  let length: string | undefined;
  for (const [, v, lower] of head.headers) {
    if (lower === "transfer-encoding") te = te === undefined ? v : `${te}, ${v}`;
    else if (lower === "content-length") {
      if (!/^\d{1,15}$/.test(v) || (length !== undefined && length !== v)) return new Error(`invalid Content-Length ${JSON.stringify(v)}`);
      length = v;
    }
  }
  if (te !== undefined) return trimOws(te.split(",").at(-1)!).toLowerCase() === "chunked" ? new ChunkedFramer() : "close";
  return length === undefined ? "close" : new LengthFramer(Number(length));
}

/** Follows one body's framing over the bytes that pass. */
export interface BodyFramer {
  /** True once the body ended. */
  readonly done: boolean;
  /**
   * Account for `buf[start..]`; returns how many of those bytes belong to the
   * body (the rest start the next message), or an Error when the framing is broken.
   */
  feed(buf: Uint8Array, start: number): number | Error;
}

/** A body of a known length. */
export class LengthFramer implements BodyFramer {
  constructor(private remaining: number) {}
  get done(): boolean {
    return this.remaining === 0;
  }
  feed(buf: Uint8Array, start: number): number {
    const n = Math.min(this.remaining, buf.length - start);
    this.remaining -= n;
    return n;
  }
}

const enum C {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  LineStart,
  Trailer,
  TrailerLf,
  EndLf,
  Done,
}

const CR = 0x0d;
const LF = 0x0a;

/** Longest chunk-size line or trailer section accepted, bytes. */
const MAX_CHUNK_META = 16 * 1024;

/** A `Transfer-Encoding: chunked` body: counts chunk data, reads only size lines and trailers. */
export class ChunkedFramer implements BodyFramer {
  #state = C.Size;
  #size = 0;
  #digits = 0;
  #meta = 0;

  get done(): boolean {
    return this.#state === C.Done;
  }

  feed(buf: Uint8Array, start: number): number | Error {
    let i = start;
    const end = buf.length;
    while (i < end && this.#state !== C.Done) {
      if (this.#state === C.Data) {
        const n = Math.min(this.#size, end - i);
        this.#size -= n;
        i += n;
        if (this.#size === 0) this.#state = C.DataCr;
        continue;
      }
      const b = buf[i++]!;
      if (++this.#meta > MAX_CHUNK_META) return new Error("chunk-size line or trailer section too long");
      const err = this.#step(b);
      if (err) return err;
    }
    return i - start;
  }

  /** One byte outside chunk data: of a chunk-size line, a CRLF, or the trailer section. */
  #step(b: number): Error | undefined {
    switch (this.#state) {
      case C.Size: {
        const v = hex(b);
        if (v >= 0) {
          if (++this.#digits > 12) return new Error("chunk size too large");
          this.#size = this.#size * 16 + v;
        } else if (this.#digits === 0) return new Error("chunk size missing");
        else if (b === CR) this.#state = C.SizeLf;
        else if (b === 0x3b || b === 0x20 || b === 0x09) this.#state = C.Ext;
        else return new Error("invalid chunk size");
        return undefined;
      }
      case C.Ext:
        return this.#skipLine(b, C.SizeLf, "chunk extension");
      case C.SizeLf:
        if (b !== LF) return new Error("chunk size line not ended by CRLF");
        this.#meta = 0;
        this.#state = this.#size === 0 ? C.LineStart : C.Data;
        return undefined;
      case C.DataCr:
        return this.#expect(b, CR, C.DataLf, "chunk data not followed by CRLF");
      case C.DataLf:
        if (b !== LF) return new Error("chunk data not followed by CRLF");
        this.#state = C.Size;
        this.#digits = 0;
        this.#meta = 0;
        return undefined;
      case C.LineStart:
        this.#state = b === CR ? C.EndLf : C.Trailer;
        return undefined;
      case C.Trailer:
        return this.#skipLine(b, C.TrailerLf, "trailer");
      case C.TrailerLf:
        return this.#expect(b, LF, C.LineStart, "trailer line not ended by CRLF");
      case C.EndLf:
        return this.#expect(b, LF, C.Done, "chunked body not ended by CRLF");
    }
    return undefined;
  }

  /** A byte of a line read only to its end (a chunk extension, a trailer field): CR moves to `atCr`; a bare LF is refused. */
  #skipLine(b: number, atCr: C, what: string): Error | undefined {
    if (b === CR) this.#state = atCr;
    else if (b === LF) return new Error(`bare LF in ${what}`);
    return undefined;
  }

  /** A byte that must be `want` (half of a CRLF): move to `next`, else refuse the body with `message`. */
  #expect(b: number, want: number, next: C, message: string): Error | undefined {
    if (b !== want) return new Error(message);
    this.#state = next;
    return undefined;
  }
}

function hex(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}
