/**
 * @module daemon/router/quick-heads
 * The router front's per-request fast path for the common head (http-front.ts):
 * a request or response head whose only hop-by-hop headers are
 * `Connection: keep-alive|close` and `Keep-Alive` is checked by the same
 * rules as http1.ts, but it is not split into header objects and rebuilt:
 * the bytes pass as sent with those lines cut out and the router's own lines
 * added (`X-Forwarded-*` and `Accept-Encoding: identity` upstream, the
 * shared-origin sandbox policy downstream). Only the headers routing and
 * framing need are read (Host, Content-Length, Transfer-Encoding, Connection).
 *
 * Anything else (any other hop-by-hop header, a `Connection` naming other
 * headers, `X-Forwarded-*` or E2B headers from the client, a Cookie that may
 * hold the web UI's, a Set-Cookie to scope under a path prefix, HTTP/1.0, 1xx,
 * repeated or conflicting framing) returns null, and the caller takes the
 * full parse and rewrite of http1.ts and raw-heads.ts, which then decides
 * exactly as before. So the fast path accepts a strict subset of heads and,
 * for those, produces what the full path does modulo whitespace around
 * header values (test/unit/router/quick-heads.test.ts checks this head by head).
 *
 * Measured with bench/router.ts (small GET through the default route, the
 * router process's CPU per request): see the note in http-front.ts.
 */
import { COOKIE_PREFIX } from "../ui/guard.ts";
import { type HeaderLine, type RequestHead, type ResponseHead, trimOws } from "./http1.ts";
import { SHARED_ORIGIN_CSP } from "./origin-isolation.ts";

/** What the fast path keeps of a head it accepted: the text and the byte ranges of the lines to cut. */
export interface QuickText {
  /** The head as sent, without its final CRLFCRLF. */
  text: string;
  /** Index of the CRLF that ends the start line. */
  startEnd: number;
  /** [from, to) ranges of header lines to cut, each from its leading CRLF, ascending. */
  cuts: number[];
}

/** A request head accepted by the fast path. */
export interface QuickRequestHead extends RequestHead {
  quick: QuickText & { acceptEncoding: boolean };
}

/** A response head accepted by the fast path. */
export interface QuickResponseHead extends ResponseHead {
  quick: QuickText;
}

/** Same rule as http1.ts HEAD: a start line, then CRLF-separated `token:value` lines; nothing else. */
const HEAD = /^[\t\x20-\x7e\x80-\xff]*(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII only: no spaces, controls or bytes above 0x7e in a target. */
const TARGET = /^\/[\x21-\x7e]*$/;
const STATUS_LINE = /^HTTP\/1\.1 ([2-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const DIGITS = /^\d{1,15}$/;
/** A `.`/`..` segment, escaped or not, before any query (Bun.serve would resolve it: the full path hands it over). */
const DOT_SEGMENT = /\/(?:\.|%2e)(?:\.|%2e)?(?:\/|\?|$)/i;

const NO_TOKENS: ReadonlySet<string> = new Set();
const CLOSE: ReadonlySet<string> = new Set(["close"]);
const KEEP_ALIVE: ReadonlySet<string> = new Set(["keep-alive"]);

/** Header names (lowercase) the fast path must look at; every other name passes unread. */
const enum Name {
  Other,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  KeepAlive,
  /** The fast path does not handle it: take the full path. */
  Refuse,
  Cookie,
  SetCookie,
  AcceptEncoding,
}

const NAMES = new Map<string, Name>([
  ["host", Name.Host],
  ["content-length", Name.ContentLength],
  ["transfer-encoding", Name.TransferEncoding],
  ["connection", Name.Connection],
  ["keep-alive", Name.KeepAlive],
  ["proxy-connection", Name.Refuse],
  ["proxy-authenticate", Name.Refuse],
  ["proxy-authorization", Name.Refuse],
  ["te", Name.Refuse],
  ["upgrade", Name.Refuse],
  ["trailer", Name.Refuse],
  ["x-forwarded-for", Name.Refuse],
  ["x-forwarded-host", Name.Refuse],
  ["x-forwarded-proto", Name.Refuse],
  ["x-forwarded-prefix", Name.Refuse],
  ["e2b-sandbox-id", Name.Refuse],
  ["e2b-sandbox-port", Name.Refuse],
  ["cookie", Name.Cookie],
  ["set-cookie", Name.SetCookie],
  ["accept-encoding", Name.AcceptEncoding],
]);
/** Those names by length: a line's name is compared in place, without slicing it, and only with names of its length. */
const BY_LENGTH: [string, Name][][] = [];
for (const [name, kind] of NAMES) (BY_LENGTH[name.length] ??= []).push([name, kind]);

/**
 * The kind of the header name `text[start, end)`, compared case-insensitively
 * in place. Setting bit 0x20 lowercases a letter and changes no other token
 * character into one of the names' characters (HEAD has checked the name is a token).
 */
function nameKind(text: string, start: number, end: number): Name {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return Name.Other;
  outer: for (const [name, kind] of candidates) {
    for (let i = 0; i < name.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== name.charCodeAt(i)) continue outer;
    return kind;
  }
  return Name.Other;
}

/** One pass over the header lines of `text` (already checked against HEAD). */
interface Scan {
  host: string | undefined;
  length: string | undefined;
  chunked: boolean;
  connection: ReadonlySet<string>;
  cuts: number[];
  acceptEncoding: boolean;
  setCookie: boolean;
}

/** Read the headers that matter; null when the head needs the full path. */
function scan(text: string, startEnd: number, request: boolean): Scan | null {
  const out: Scan = { host: undefined, length: undefined, chunked: false, connection: NO_TOKENS, cuts: [], acceptEncoding: false, setCookie: false };
  let at = startEnd;
  while (at < text.length) {
    // `at` is the CRLF before a header line; HEAD guarantees the colon and that no value holds a CR.
    const lineStart = at + 2;
    const next = text.indexOf("\r\n", lineStart);
    const lineEnd = next < 0 ? text.length : next;
    const colon = text.indexOf(":", lineStart);
    const at0 = at;
    at = lineEnd;
    const kind = nameKind(text, lineStart, colon);
    if (kind === Name.Other) continue;
    if (kind === Name.Refuse) return null;
    const value = kind <= Name.Connection || kind === Name.Cookie ? trimOws(text.slice(colon + 1, lineEnd)) : "";
    switch (kind) {
      case Name.Host:
        if (out.host !== undefined || value === "") return null;
        out.host = value;
        break;
      case Name.ContentLength:
        if (out.length !== undefined || !DIGITS.test(value)) return null;
        out.length = value;
        break;
      case Name.TransferEncoding:
        if (out.chunked || value.toLowerCase() !== "chunked") return null;
        out.chunked = true;
        break;
      case Name.Connection: {
        const v = value.toLowerCase();
        if (out.connection !== NO_TOKENS || (v !== "close" && v !== "keep-alive")) return null;
        out.connection = v === "close" ? CLOSE : KEEP_ALIVE;
        out.cuts.push(at0, lineEnd);
        break;
      }
      case Name.KeepAlive:
        out.cuts.push(at0, lineEnd);
        break;
      case Name.Cookie:
        // The web UI's cookie never reaches a guest: a Cookie that may hold it takes the full path.
        if (!request || value.includes(COOKIE_PREFIX)) return null;
        break;
      case Name.SetCookie:
        out.setCookie = true;
        break;
      case Name.AcceptEncoding:
        out.acceptEncoding = true;
        break;
    }
  }
  if (out.length !== undefined && out.chunked) return null;
  return out;
}

/** The text of `q` without its cut lines, from `from` on. */
function kept(q: QuickText, from: number): string {
  if (q.cuts.length === 0) return from === 0 ? q.text : q.text.slice(from);
  let out = "";
  let at = from;
  for (let i = 0; i < q.cuts.length; i += 2) {
    out += q.text.slice(at, q.cuts[i]);
    at = q.cuts[i + 1]!;
  }
  return out + q.text.slice(at);
}

/**
 * The fast path's request head (`text` decoded as latin1, without its final
 * CRLFCRLF); null means "take parseRequestHead", which decides as always.
 */
export function quickRequestHead(text: string): QuickRequestHead | null {
  if (!HEAD.test(text)) return null;
  const startEnd = text.indexOf("\r\n");
  if (startEnd < 0) return null; // no Host header
  // `METHOD SP TARGET SP HTTP/1.1`, exactly (HEAD has ruled out CR, LF and controls).
  const sp1 = text.indexOf(" ");
  const sp2 = text.indexOf(" ", sp1 + 1);
  if (sp1 < 0 || sp2 < 0 || sp2 + 9 !== startEnd || !text.startsWith(" HTTP/1.1", sp2)) return null;
  const method = text.slice(0, sp1);
  const target = text.slice(sp1 + 1, sp2);
  if (!TOKEN.test(method) || method === "CONNECT" || !TARGET.test(target)) return null;
  const q = target.indexOf("?");
  if (DOT_SEGMENT.test(q < 0 ? target : target.slice(0, q))) return null;
  const s = scan(text, startEnd, true);
  if (!s || s.host === undefined) return null;
  const headers: HeaderLine[] = [["Host", s.host, "host"]];
  const body = s.chunked ? ({ kind: "chunked" } as const) : ({ kind: "length", length: s.length === undefined ? 0 : Number(s.length) } as const);
  const connection = s.connection as Set<string>;
  return { method, target, headers, host: s.host, body, close: connection.has("close"), connection, quick: { text, startEnd, cuts: s.cuts, acceptEncoding: s.acceptEncoding } };
}

/**
 * The fast path's response head; null means "take parseResponseHead". `prefix`
 * is the stripped `/NAME` of a path-prefix route (its Set-Cookie paths must be
 * scoped: the full path does that).
 */
export function quickResponseHead(text: string, prefix: string | undefined): QuickResponseHead | null {
  if (!HEAD.test(text)) return null;
  const startEnd = text.indexOf("\r\n");
  const m = STATUS_LINE.exec(startEnd < 0 ? text : text.slice(0, startEnd));
  if (!m) return null;
  const s = scan(text, startEnd < 0 ? text.length : startEnd, false);
  if (!s || (s.setCookie && prefix)) return null;
  const headers: HeaderLine[] = [];
  if (s.length !== undefined) headers.push(["Content-Length", s.length, "content-length"]);
  if (s.chunked) headers.push(["Transfer-Encoding", "chunked", "transfer-encoding"]);
  const connection = s.connection as Set<string>;
  return { status: Number(m[1]), reason: m[2] ?? "", headers, close: connection.has("close"), connection, quick: { text, startEnd: startEnd < 0 ? text.length : startEnd, cuts: s.cuts } };
}

/** What upstreamRequestHead (raw-heads.ts) writes for a fast-path head, CRLFCRLF included. */
export function quickUpstreamRequestHead(req: QuickRequestHead, path: string, clientIp: string | undefined, prefix: string | undefined): string {
  const q = req.quick;
  let out = path === req.target ? kept(q, 0) : `${req.method} ${path} HTTP/1.1${kept(q, q.startEnd)}`;
  if (clientIp) out += `\r\nx-forwarded-for: ${clientIp}`;
  out += `\r\nx-forwarded-host: ${req.host}\r\nx-forwarded-proto: http`;
  if (prefix) out += `\r\nx-forwarded-prefix: ${prefix}`;
  if (!q.acceptEncoding) out += "\r\naccept-encoding: identity";
  return `${out}\r\n\r\n`;
}

/** What downstreamResponseHead (raw-heads.ts) writes for a fast-path head (`isolate`: the shared router origin), CRLFCRLF included. */
export function quickDownstreamResponseHead(res: QuickResponseHead, isolate: boolean): string {
  const out = kept(res.quick, 0);
  return isolate ? `${out}\r\ncontent-security-policy: ${SHARED_ORIGIN_CSP}\r\n\r\n` : `${out}\r\n\r\n`;
}
