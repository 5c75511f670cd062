/**
 * The router front's fast path for common heads (src/daemon/router/quick-heads.ts)
 * against the full parse and rewrite (http1.ts, raw-heads.ts): for every head
 * it accepts, the routing and framing facts and the rewritten head must be the
 * full path's (header values compared trimmed); every head it refuses must go
 * to the full path, which then decides as before.
 */
import { describe, expect, it } from "bun:test";
import { parseRequestHead, parseResponseHead, responseFraming } from "../../../src/daemon/router/http1.ts";
import { SHARED_ORIGIN_CSP } from "../../../src/daemon/router/origin-isolation.ts";
import { quickDownstreamResponseHead, quickRequestHead, quickResponseHead, quickUpstreamRequestHead } from "../../../src/daemon/router/quick-heads.ts";
import { downstreamResponseHead, upstreamRequestHead } from "../../../src/daemon/router/raw-heads.ts";

const head = (...lines: string[]) => lines.join("\r\n");

/** A head as comparable lines: start line as is, then `lowercase-name: trimmed value`, in order. */
function normal(text: string): string[] {
  const [start, ...rest] = text.replace(/\r\n\r\n$/, "").split("\r\n");
  return [start!.trimEnd(), ...rest.map((l) => `${l.slice(0, l.indexOf(":")).toLowerCase()}: ${l.slice(l.indexOf(":") + 1).trim()}`)];
}

const ACCEPTED_REQUESTS = [
  head("GET / HTTP/1.1", "Host: 127.0.0.1:8099"),
  head("GET /a?b=1 HTTP/1.1", "host: web.localhost:8099", "Connection: keep-alive", "User-Agent: Bun/1.4.5", "Accept: */*", "Accept-Encoding: gzip, deflate, br, zstd"),
  head("POST /web/api HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 12", "CONNECTION: Close", "Keep-Alive: timeout=5", "Cookie: a=1; b=2"),
  head("PUT /x HTTP/1.1", "Transfer-Encoding: chunked", "X-Kept:   spaced   ", "Host:127.0.0.1"),
  head("GET /%2Fx/.hidden/a..b HTTP/1.1", "Host: 127.0.0.1", "X-Obs: caf\xe9"),
  head("DELETE /web HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 0"),
];

/** Heads the fast path must leave to the full path (which may still proxy them, or hand them over). */
const REFUSED_REQUESTS = [
  head("GET / HTTP/1.1", "Host: a", "Host: b"),
  head("GET / HTTP/1.1", "Content-Length: 1"),
  head("GET / HTTP/1.0", "Host: a"),
  head("GET http://a/ HTTP/1.1", "Host: a"),
  head("GET /a/../b HTTP/1.1", "Host: a"),
  head("GET /a/%2e%2E/b HTTP/1.1", "Host: a"),
  head("GET /a/. HTTP/1.1", "Host: a"),
  head("CONNECT / HTTP/1.1", "Host: a"),
  head("GET  / HTTP/1.1", "Host: a"),
  head("GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade"),
  head("GET / HTTP/1.1", "Host: a", "Connection: keep-alive, X-Private", "X-Private: 1"),
  head("GET / HTTP/1.1", "Host: a", "Connection: close", "Connection: close"),
  head("GET / HTTP/1.1", "Host: a", "TE: trailers"),
  head("GET / HTTP/1.1", "Host: a", "Proxy-Authorization: x"),
  head("GET / HTTP/1.1", "Host: a", "X-Forwarded-For: 10.0.0.1"),
  head("GET / HTTP/1.1", "Host: a", "x-forwarded-host: evil"),
  head("GET / HTTP/1.1", "Host: a", "Cookie: a=1; aegis_ui_8098=secret"),
  head("GET / HTTP/1.1", "Host: a", "E2b-Sandbox-Id: x", "E2b-Sandbox-Port: 49983"),
  head("GET / HTTP/1.1", "Host: a", "Content-Length: 1", "Content-Length: 1"),
  head("GET / HTTP/1.1", "Host: a", "Content-Length: -1"),
  head("GET / HTTP/1.1", "Host: a", "Content-Length: 1", "Transfer-Encoding: chunked"),
  head("GET / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"),
  head("GET / HTTP/1.1", "Host: a", "Bad Name: x"),
  head("GET / HTTP/1.1", "Host: a", " folded"),
  head("GET / HTTP/1.1\nHost: a"),
  head("GET / HTTP/1.1", "Host: "),
];

describe("router front fast path: request heads", () => {
  it("accepts the common heads and agrees with the full parse on what routes and frames them", () => {
    for (const text of ACCEPTED_REQUESTS) {
      const quick = quickRequestHead(text);
      const full = parseRequestHead(text);
      expect(quick, text).not.toBeNull();
      expect(full, text).not.toBeNull();
      expect({ method: quick!.method, target: quick!.target, host: quick!.host, body: quick!.body, close: quick!.close }).toEqual({ method: full!.method, target: full!.target, host: full!.host, body: full!.body, close: full!.close });
    }
  });

  it("sends upstream the head the full rewrite sends, for every route shape", () => {
    for (const text of ACCEPTED_REQUESTS) {
      const quick = quickRequestHead(text)!;
      const full = parseRequestHead(text)!;
      for (const [path, prefix] of [[quick.target, undefined], ["/stripped?q", "/web"]] as const) {
        for (const clientIp of ["127.0.0.1", undefined]) {
          const got = quickUpstreamRequestHead(quick, path, clientIp, prefix);
          expect(got.endsWith("\r\n\r\n")).toBe(true);
          expect(normal(got), text).toEqual(normal(upstreamRequestHead(full, path, { clientIp, host: full.host, prefix })));
        }
      }
    }
  });

  it("leaves every unusual or hop-by-hop-laden head to the full path", () => {
    for (const text of REFUSED_REQUESTS) expect(quickRequestHead(text), text).toBeNull();
  });

  it("takes only space and tab as whitespace around a value: byte 0xA0 (U+00A0 in a latin1 head) makes framing invalid on both paths", () => {
    // String.prototype.trim strips U+00A0: the router would frame `chunked\xa0` as chunked while the guest reads another body.
    for (const text of [
      head("POST / HTTP/1.1", "Host: a.localhost", "Transfer-Encoding: chunked\xa0"),
      head("POST / HTTP/1.1", "Host: a.localhost", "Transfer-Encoding: \xa0chunked"),
      head("POST / HTTP/1.1", "Host: a.localhost", "Content-Length: 5\xa0"),
    ]) {
      expect(quickRequestHead(text), text).toBeNull();
      expect(parseRequestHead(text), text).toBeNull();
    }
    // Space and tab are still optional whitespace.
    expect(quickRequestHead(head("POST / HTTP/1.1", "Host: a", "Content-Length: \t5 "))!.body).toEqual({ kind: "length", length: 5 });
    expect(parseRequestHead(head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding:\tchunked\t"))!.body).toEqual({ kind: "chunked" });
    // A response whose last coding is `chunked\xa0` is not chunked (read to close), as a browser would read it.
    expect(responseFraming(parseResponseHead(head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked\xa0"))!, "GET")).toBe("close");
  });
});

const ACCEPTED_RESPONSES = [
  head("HTTP/1.1 200 OK", "content-type: text/plain", "Date: Wed, 02 Dec 2026 09:45:00 GMT", "Content-Length: 21"),
  head("HTTP/1.1 404 Not Found", "Transfer-Encoding: chunked", "Connection: keep-alive", "Keep-Alive: timeout=5"),
  head("HTTP/1.1 204"),
  head("HTTP/1.1 500 Internal Server Error", "Connection: close", "Set-Cookie: a=1; Path=/", "X-Sp:  x  "),
  head("HTTP/1.1 304 Not Modified", "ETag: \"1\"", "Content-Length: 5"),
];

const REFUSED_RESPONSES = [
  head("HTTP/1.0 200 OK", "Content-Length: 1"),
  head("HTTP/1.1 100 Continue"),
  head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket"),
  head("HTTP/1.1 200 OK", "Connection: keep-alive, X-Private"),
  head("HTTP/1.1 200 OK", "Content-Length: 1", "Content-Length: 1"),
  head("HTTP/1.1 200 OK", "Content-Length: 1", "Transfer-Encoding: chunked"),
  head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"),
  head("HTTP/1.1 200 OK", "Proxy-Authenticate: Basic"),
  head("HTTP/1.1 200 OK", "Trailer: x"),
  head("HTTP/1.1 200 OK", "Bad Name: x"),
  head("HTTP/1.1 2000 OK"),
];

describe("router front fast path: response heads", () => {
  it("agrees with the full parse on status, framing and close, and writes the same head, sandbox policy included", () => {
    for (const text of ACCEPTED_RESPONSES) {
      const quick = quickResponseHead(text, undefined);
      const full = parseResponseHead(text);
      expect(quick, text).not.toBeNull();
      expect({ status: quick!.status, reason: quick!.reason, close: quick!.close }).toEqual({ status: full!.status, reason: full!.reason, close: full!.close });
      for (const method of ["GET", "HEAD"]) expect(responseFraming(quick!, method), text).toEqual(responseFraming(full!, method));
      for (const isolate of [true, false]) {
        const got = quickDownstreamResponseHead(quick!, isolate);
        const want = downstreamResponseHead(full!, isolate ? { prefix: undefined } : null, false);
        expect(normal(got), text).toEqual(normal(want));
        expect(got.includes(`content-security-policy: ${SHARED_ORIGIN_CSP}\r\n`)).toBe(isolate);
      }
    }
  });

  it("leaves a Set-Cookie under a path prefix, and every unusual head, to the full path", () => {
    expect(quickResponseHead(head("HTTP/1.1 200 OK", "Set-Cookie: a=1; Path=/"), "/web")).toBeNull();
    expect(quickResponseHead(head("HTTP/1.1 200 OK", "Content-Length: 0"), "/web")).not.toBeNull();
    for (const text of REFUSED_RESPONSES) expect(quickResponseHead(text, undefined), text).toBeNull();
  });
});
