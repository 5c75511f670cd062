import { describe, expect, it } from "bun:test";
import { downstreamResponseHeaders, stripHopByHop, upstreamRequestHeaders, upstreamWebSocketHeaders } from "../../../src/daemon/router/headers.ts";

describe("router headers", () => {
  it("drops hop-by-hop headers and the ones Connection names", () => {
    const h = stripHopByHop(new Headers({ connection: "keep-alive, X-Private", "x-private": "1", "keep-alive": "timeout=5", te: "trailers", "transfer-encoding": "chunked", upgrade: "h2c", "x-kept": "yes" }));
    expect([...h.keys()]).toEqual(["x-kept"]);
  });

  it("preserves Host and end-to-end headers and adds X-Forwarded-*", () => {
    const h = upstreamRequestHeaders(new Headers({ host: "web.localhost:8099", cookie: "a=1", "accept-encoding": "gzip" }), { clientIp: "127.0.0.1", host: "web.localhost:8099", prefix: "/web" });
    expect(Object.fromEntries(h)).toEqual({
      host: "web.localhost:8099",
      cookie: "a=1",
      "accept-encoding": "gzip",
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-host": "web.localhost:8099",
      "x-forwarded-proto": "http",
      "x-forwarded-prefix": "/web",
    });
  });

  it("appends to X-Forwarded-For, overrides client-sent -Host/-Proto and asks for identity encoding by default", () => {
    const h = upstreamRequestHeaders(new Headers({ "x-forwarded-for": "10.0.0.1", "x-forwarded-host": "evil", "x-forwarded-proto": "https" }), { clientIp: "127.0.0.1", host: null });
    expect(h.get("x-forwarded-for")).toBe("10.0.0.1, 127.0.0.1");
    expect(h.get("x-forwarded-host")).toBeNull();
    expect(h.get("x-forwarded-proto")).toBe("http");
    expect(h.get("accept-encoding")).toBe("identity");
  });

  it("leaves the WebSocket handshake headers to the client library", () => {
    const h = upstreamWebSocketHeaders(new Headers({ upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "k", "sec-websocket-version": "13", "sec-websocket-protocol": "chat", origin: "http://x" }), { clientIp: "::1", host: "x" });
    expect(h).toEqual({ origin: "http://x", "x-forwarded-for": "::1", "x-forwarded-host": "x", "x-forwarded-proto": "http" });
  });

  it("keeps every Set-Cookie of a response", () => {
    const up = new Headers([["set-cookie", "a=1"], ["set-cookie", "b=2"], ["connection", "close"]]);
    const h = downstreamResponseHeaders(up);
    expect(h.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(h.has("connection")).toBe(false);
  });
});

describe("the web UI's session cookie", () => {
  it("never reaches a guest, over HTTP or a WebSocket handshake; other cookies pass", () => {
    const incoming = new Headers({ cookie: "a=1; aegis_ui_8098=secret; b=2; aegis_ui_9000=other", host: "web.localhost:8099" });
    expect(upstreamRequestHeaders(incoming, { clientIp: "127.0.0.1", host: "web.localhost:8099" }).get("cookie")).toBe("a=1; b=2");
    expect(upstreamWebSocketHeaders(incoming, { clientIp: "127.0.0.1", host: "web.localhost:8099" }).cookie).toBe("a=1; b=2");
    const only = new Headers({ cookie: "aegis_ui_8098=secret" });
    expect(upstreamRequestHeaders(only, { clientIp: undefined, host: null }).has("cookie")).toBe(false);
  });
});
