/**
 * @module daemon/router/raw-heads
 * The header rules of headers.ts and origin-isolation.ts applied to raw
 * HTTP/1.1 heads, for the router front (http-front.ts), which forwards
 * bodies byte for byte and so keeps their framing headers: Content-Length
 * and Transfer-Encoding pass (the chunked bytes pass as sent), every other
 * hop-by-hop header stays on its hop, `X-Forwarded-*` are added, the web UI's
 * cookie is dropped, and shared-origin responses are sandboxed.
 */
import type { RequestHead, ResponseHead } from "./http1.ts";
import type { ForwardInfo } from "./headers.ts";
import { withoutUiCookie } from "./headers.ts";
import { SHARED_ORIGIN_CSP, scopeCookie } from "./origin-isolation.ts";

/** Hop-by-hop headers dropped from both directions (framing headers excepted: the body passes framed as sent). */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "upgrade"]);
/** Headers a `Connection` header may not remove: dropping them would change where the message ends or who it is for. */
const FRAMING = new Set(["content-length", "transfer-encoding", "host"]);

/** The headers to drop from a message whose `Connection` header named `tokens`. */
function dropped(tokens: Set<string>): Set<string> {
  let out: Set<string> | undefined;
  for (const t of tokens) {
    if (HOP.has(t) || FRAMING.has(t) || t === "close") continue;
    out ??= new Set(HOP);
    out.add(t);
  }
  return out ?? HOP;
}

/** The request head to send upstream: `METHOD PATH HTTP/1.1` and the rewritten headers, CRLFCRLF included. */
export function upstreamRequestHead(req: RequestHead, path: string, info: ForwardInfo): string {
  const drop = dropped(req.connection);
  let out = `${req.method} ${path} HTTP/1.1\r\n`;
  let forwardedFor: string | undefined;
  let acceptEncoding = false;
  for (const [name, value, lower] of req.headers) {
    if (drop.has(lower) || lower === "x-forwarded-host" || lower === "x-forwarded-proto") continue;
    if (lower === "x-forwarded-for") {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === "x-forwarded-prefix" && info.prefix) continue;
    if (lower === "cookie") {
      const kept = withoutUiCookie(value);
      if (kept !== null) out += `${name}: ${kept}\r\n`;
      continue;
    }
    if (lower === "accept-encoding") acceptEncoding = true;
    out += `${name}: ${value}\r\n`;
  }
  if (info.clientIp) forwardedFor = forwardedFor ? `${forwardedFor}, ${info.clientIp}` : info.clientIp;
  if (forwardedFor !== undefined) out += `x-forwarded-for: ${forwardedFor}\r\n`;
  if (info.host) out += `x-forwarded-host: ${info.host}\r\n`;
  out += "x-forwarded-proto: http\r\n";
  if (info.prefix) out += `x-forwarded-prefix: ${info.prefix}\r\n`;
  // The same default as the fetch-based path (headers.ts): the guest sends what was asked for, or identity.
  if (!acceptEncoding) out += "accept-encoding: identity\r\n";
  return `${out}\r\n`;
}

/**
 * The response head to send the client. `isolate` is set for the shared
 * router origin (origin-isolation.ts): the sandbox policy is added and, with
 * a prefix, cookie paths are scoped. `dropLength`: the body is chunked, so a
 * Content-Length beside it is dropped (RFC 9112 section 6.3).
 */
export function downstreamResponseHead(res: ResponseHead, isolate: { prefix: string | undefined } | null, dropLength: boolean): string {
  const drop = dropped(res.connection);
  let out = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  for (const [name, value, lower] of res.headers) {
    if (drop.has(lower) || (dropLength && lower === "content-length")) continue;
    if (isolate?.prefix && lower === "set-cookie") out += `${name}: ${scopeCookie(value, isolate.prefix)}\r\n`;
    else out += `${name}: ${value}\r\n`;
  }
  if (isolate) out += `content-security-policy: ${SHARED_ORIGIN_CSP}\r\n`;
  return `${out}\r\n`;
}
