/**
 * @module daemon/router/headers
 * Header rewriting for the reverse proxy: hop-by-hop headers (RFC 9110
 * section 7.6.1) stay on their hop, end-to-end headers pass unchanged, and
 * the request gains `X-Forwarded-For/-Host/-Proto` (and `-Prefix` when the
 * router stripped a path prefix). The original Host header is preserved so
 * guests see the name the user typed. The web UI's session cookie never
 * passes (see {@link stripUiCookie}).
 */
import { COOKIE_PREFIX } from "../ui/guard.ts";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Headers a WebSocket client library sets itself for the upstream handshake. */
const WS_HANDSHAKE = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol", "content-length"]);

/** Drop hop-by-hop headers, including any named by `Connection`. Mutates and returns `h`. */
export function stripHopByHop(h: Headers): Headers {
  const named = h.get("connection");
  if (named) for (const n of named.split(",")) h.delete(n.trim());
  for (const n of HOP_BY_HOP) h.delete(n);
  return h;
}

/** What the router knows about the client side of one request. */
export interface ForwardInfo {
  clientIp: string | undefined;
  host: string | null;
  prefix?: string;
}

/**
 * Drop the web UI's session cookie (daemon/ui/guard.ts): browsers send a
 * 127.0.0.1 cookie to every port, and it must never reach a guest. Mutates
 * and returns `h`.
 */
export function stripUiCookie(h: Headers): Headers {
  const cookie = h.get("cookie");
  if (cookie === null) return h;
  const kept = withoutUiCookie(cookie);
  if (kept === null) h.delete("cookie");
  else h.set("cookie", kept);
  return h;
}

/** One Cookie header value without the web UI's session cookie; null when nothing is left. */
export function withoutUiCookie(cookie: string): string | null {
  const kept = cookie
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c.length > 0 && !c.startsWith(`${COOKIE_PREFIX}_`) && !c.startsWith(`${COOKIE_PREFIX}=`));
  return kept.length === 0 ? null : kept.join("; ");
}

/** The headers to send upstream for an HTTP request. */
export function upstreamRequestHeaders(incoming: Headers, info: ForwardInfo): Headers {
  const h = stripUiCookie(stripHopByHop(new Headers(incoming)));
  addForwarded(h, info);
  // Without this Bun's fetch would offer gzip/br on the client's behalf and, as the
  // router does not decompress, hand the client an encoding it never asked for.
  if (!h.has("accept-encoding")) h.set("accept-encoding", "identity");
  return h;
}

/** The headers for the upstream WebSocket handshake (the client library adds its own Sec-WebSocket-*). */
export function upstreamWebSocketHeaders(incoming: Headers, info: ForwardInfo): Record<string, string> {
  const h = stripUiCookie(stripHopByHop(new Headers(incoming)));
  for (const n of WS_HANDSHAKE) h.delete(n);
  addForwarded(h, info);
  return Object.fromEntries(h);
}

/** The headers to send the client for an upstream response. */
export function downstreamResponseHeaders(upstream: Headers): Headers {
  return stripHopByHop(new Headers(upstream));
}

function addForwarded(h: Headers, info: ForwardInfo): void {
  if (info.clientIp) {
    const prior = h.get("x-forwarded-for");
    h.set("x-forwarded-for", prior ? `${prior}, ${info.clientIp}` : info.clientIp);
  }
  // The router is the edge: a client-sent X-Forwarded-Host/-Proto is not trusted.
  if (info.host) h.set("x-forwarded-host", info.host);
  else h.delete("x-forwarded-host");
  h.set("x-forwarded-proto", "http");
  if (info.prefix) h.set("x-forwarded-prefix", info.prefix);
}
