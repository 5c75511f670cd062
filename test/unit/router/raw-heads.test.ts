import { describe, expect, it } from "bun:test";
import { parseRequestHead, parseResponseHead } from "../../../src/daemon/router/http1.ts";
import { downstreamResponseHead, upstreamRequestHead } from "../../../src/daemon/router/raw-heads.ts";
import { SHARED_ORIGIN_CSP } from "../../../src/daemon/router/origin-isolation.ts";

const lines = (text: string) => text.split("\r\n").filter(Boolean);

describe("router front: the request head sent upstream", () => {
  it("keeps method, end-to-end headers and framing, rewrites the path, adds X-Forwarded-*, drops hop-by-hop and the UI cookie", () => {
    const req = parseRequestHead(
      [
        "POST /web/api?x=1 HTTP/1.1",
        "Host: 127.0.0.1:8099",
        "Connection: keep-alive, X-Private",
        "X-Private: 1",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Transfer-Encoding: chunked",
        "Cookie: a=1; aegis_ui_8098=secret",
        "Cookie: aegis_ui_9000=other",
        "X-Forwarded-For: 10.0.0.1",
        "X-Forwarded-Host: evil",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Prefix: /spoofed",
        "X-Kept: yes",
      ].join("\r\n"),
    )!;
    expect(lines(upstreamRequestHead(req, "/api?x=1", { clientIp: "127.0.0.1", host: req.host, prefix: "/web" }))).toEqual([
      "POST /api?x=1 HTTP/1.1",
      "Host: 127.0.0.1:8099",
      "Transfer-Encoding: chunked",
      "Cookie: a=1",
      "X-Kept: yes",
      "x-forwarded-for: 10.0.0.1, 127.0.0.1",
      "x-forwarded-host: 127.0.0.1:8099",
      "x-forwarded-proto: http",
      "x-forwarded-prefix: /web",
      "accept-encoding: identity",
    ]);
  });

  it("never lets Connection remove the headers that frame or address the message", () => {
    const req = parseRequestHead(["POST / HTTP/1.1", "Host: a", "Connection: content-length, host", "Content-Length: 3", "Accept-Encoding: gzip"].join("\r\n"))!;
    const out = lines(upstreamRequestHead(req, "/", { clientIp: undefined, host: "a" }));
    expect(out).toContain("Content-Length: 3");
    expect(out).toContain("Host: a");
    expect(out).toContain("Accept-Encoding: gzip");
    expect(out).not.toContain("accept-encoding: identity");
  });
});

describe("router front: the response head sent to the client", () => {
  const res = parseResponseHead(
    ["HTTP/1.1 200 OK", "Connection: close", "Keep-Alive: timeout=5", "Content-Security-Policy: default-src 'self'", "Set-Cookie: s=1; Path=/; HttpOnly", "Set-Cookie: p=2", "Transfer-Encoding: chunked", "Content-Length: 10"].join("\r\n"),
  )!;

  it("passes a NAME.localhost response as sent, minus hop-by-hop headers", () => {
    expect(lines(downstreamResponseHead(res, null, false))).toEqual([
      "HTTP/1.1 200 OK",
      "Content-Security-Policy: default-src 'self'",
      "Set-Cookie: s=1; Path=/; HttpOnly",
      "Set-Cookie: p=2",
      "Transfer-Encoding: chunked",
      "Content-Length: 10",
    ]);
  });

  it("sandboxes a shared-origin response, scopes its cookies under the prefix and drops a Content-Length beside chunked", () => {
    expect(lines(downstreamResponseHead(res, { prefix: "/web" }, true))).toEqual([
      "HTTP/1.1 200 OK",
      "Content-Security-Policy: default-src 'self'",
      "Set-Cookie: s=1; Path=/web; HttpOnly",
      "Set-Cookie: p=2; Path=/web",
      "Transfer-Encoding: chunked",
      `content-security-policy: ${SHARED_ORIGIN_CSP}`,
    ]);
    expect(lines(downstreamResponseHead(res, { prefix: undefined }, false))).toContain("Set-Cookie: s=1; Path=/; HttpOnly");
  });
});
