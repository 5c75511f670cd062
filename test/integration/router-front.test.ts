/**
 * The router's raw HTTP/1.1 front (src/daemon/router/http-front.ts) over
 * real sockets: connection reuse, pipelining across instances, the guest's
 * framing kept, stale keep-alive retries, hostile guests, and the requests it
 * hands to Bun.serve. Local servers stand in for guest ports.
 */
import { describe, expect, it } from "bun:test";
import { startRouter, TestHooks, upstream } from "../unit/router/_fixtures.ts";

/** Send raw bytes on one connection and collect what comes back until `done(text)` or the peer closes. */
async function raw(port: number, send: string, done: (text: string) => boolean, timeoutMs = 3000): Promise<string> {
  let text = "";
  let finish!: () => void;
  const ended = new Promise<void>((r) => (finish = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        text += chunk.toString("latin1");
        if (done(text)) finish();
      },
      close: () => finish(),
    },
  });
  sock.write(send);
  await Promise.race([ended, Bun.sleep(timeoutMs)]);
  sock.end();
  return text;
}

/** A guest speaking raw TCP: `answer` gets each connection's received text and the socket. */
function rawGuest(answer: (text: string, socket: Bun.Socket<{ text: string }>) => void) {
  const server = Bun.listen<{ text: string }>({
    hostname: "127.0.0.1",
    port: 0,
    data: { text: "" },
    socket: {
      open: (s) => void (s.data = { text: "" }),
      data: (s, chunk) => {
        s.data.text += chunk.toString("latin1");
        answer(s.data.text, s);
      },
    },
  });
  return { addr: { host: "127.0.0.1", port: server.port }, [Symbol.dispose]: () => server.stop(true) };
}

describe("router front: connections", () => {
  it("keeps one upstream connection for a client's keep-alive requests to one instance", async () => {
    const peers = new Set<number>();
    using web = upstream({ fetch: (req, server) => (peers.add(server.requestIP(req)!.port), new Response("ok")) });
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr));
    for (let i = 0; i < 50; i++) expect(await (await fetch(`${r.url}/n/${i}`)).text()).toBe("ok");
    expect(peers.size).toBe(1);
    await r.hooks.settled();
    expect(r.hooks.total).toBe(50);
  });

  it("answers pipelined requests in order, each routed to its own instance", async () => {
    using web = upstream({ fetch: async (req) => (await Bun.sleep(20), new Response(`web ${new URL(req.url).pathname}`)) });
    using api = upstream({ fetch: (req) => new Response(`api ${new URL(req.url).pathname}`) });
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr).serve("inst-api", "api", api.addr));
    const req = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const text = await raw(r.router.httpPort, req("/web/one") + req("/api/two") + req("/web/three"), (t) => t.split("HTTP/1.1 200").length === 4 && t.endsWith("/three"));
    const bodies = text.split("HTTP/1.1 200").slice(1).map((part) => part.slice(part.indexOf("\r\n\r\n") + 4));
    expect(bodies).toEqual(["web /one", "api /two", "web /three"]);
    await r.hooks.settled();
  });

  it("retries an idempotent request once when a kept-alive guest connection turns out closed", async () => {
    let answered = 0;
    // Answers the first request of each connection; a second one on the same connection is met with a close.
    using guest = rawGuest((text, s) => {
      const requests = text.split("\r\n\r\n").length - 1;
      if (requests === 1 && text.endsWith("\r\n\r\n")) {
        answered++;
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      } else if (requests > 1) s.end();
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", guest.addr));
    const req = "GET /a HTTP/1.1\r\nHost: web.localhost\r\n\r\n";
    const text = await raw(r.router.httpPort, req + req, (t) => t.split("ok").length === 3);
    expect(text.split("HTTP/1.1 200 OK").length).toBe(3);
    expect(answered).toBe(2);
    expect(r.logs.join("\n")).toContain("router: retrying idempotent request after upstream error");
    // A POST is never sent twice: the client gets a 502 instead.
    const post = "POST /a HTTP/1.1\r\nHost: web.localhost\r\nContent-Length: 1\r\n\r\nx";
    const posted = await raw(r.router.httpPort, req + post, (t) => t.includes("HTTP/1.1 502"));
    expect(posted).toContain("HTTP/1.1 502");
    expect(answered).toBe(3);
    await r.hooks.settled();
  });
});

describe("router front: framing", () => {
  it("gives the client the guest's Content-Length on a large streamed body, and its chunked framing and trailers otherwise", async () => {
    const MB = 1024 * 1024;
    using guest = rawGuest((text, s) => {
      if (!text.includes("\r\n\r\n")) return;
      if (text.startsWith("GET /sized")) {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * MB}\r\n\r\n`);
        s.write(Buffer.alloc(2 * MB, 120));
      } else s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n");
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", guest.addr));
    const res = await fetch(`${r.url}/sized`);
    expect(res.headers.get("content-length")).toBe(String(2 * MB));
    expect((await res.arrayBuffer()).byteLength).toBe(2 * MB);
    const chunked = await raw(r.router.httpPort, "GET /chunked HTTP/1.1\r\nHost: web.localhost\r\n\r\n", (t) => t.endsWith("\r\n\r\n") && t.includes("X-Sum: 3"));
    expect(chunked).toContain("Transfer-Encoding: chunked");
    expect(chunked).toEndWith("3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\n");
    await r.hooks.settled();
  });

  it("passes a chunked upload through as sent and hands ambiguous framing to Bun.serve, which refuses it", async () => {
    const got: string[] = [];
    using guest = rawGuest((text, s) => {
      if (!text.endsWith("0\r\n\r\n")) return;
      got.push(text);
      s.write("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", guest.addr));
    const ok = await raw(r.router.httpPort, "POST /up HTTP/1.1\r\nHost: web.localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n", (t) => t.includes("\r\n\r\n"));
    expect(ok).toStartWith("HTTP/1.1 201");
    expect(got[0]).toEndWith("\r\n\r\n4\r\nwiki\r\n0\r\n\r\n");
    const smuggle = "POST /up HTTP/1.1\r\nHost: web.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: web.localhost\r\n\r\n";
    const refused = await raw(r.router.httpPort, smuggle, (t) => t.includes("\r\n\r\n"));
    expect(refused).toStartWith("HTTP/1.1 400");
    expect(got.some((t) => t.includes("/admin"))).toBe(false);
    await r.hooks.settled();
  });
});

describe("router front: hostile guests", () => {
  it("answers 502 for a garbage or endless response head, and keeps serving", async () => {
    using garbage = rawGuest((_t, s) => void s.write("SSH-2.0-OpenSSH\r\n\r\n"));
    using endless = rawGuest((_t, s) => void s.write(`HTTP/1.1 200 OK\r\n${"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(2000)}`));
    using good = upstream({ fetch: () => new Response("fine") });
    await using r = await startRouter(new TestHooks().serve("inst-g", "garbage", garbage.addr).serve("inst-e", "endless", endless.addr).serve("inst-ok", "good", good.addr));
    const a = await fetch(`${r.url}/garbage/`);
    expect(a.status).toBe(502);
    expect(((await a.json()) as any).error.message).toContain("malformed HTTP response head");
    const b = await fetch(`${r.url}/endless/`);
    expect(b.status).toBe(502);
    expect(((await b.json()) as any).error.message).toContain("response head longer than");
    expect(await (await fetch(`${r.url}/good/`)).text()).toBe("fine");
    await r.hooks.settled();
  });

  it("cuts the client off when the guest breaks off mid-body, and ends the activity", async () => {
    using guest = rawGuest((text, s) => {
      if (!text.includes("\r\n\r\n")) return;
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
      setTimeout(() => s.end(), 10);
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", guest.addr));
    const res = await fetch(`${r.url}/x`);
    await expect(res.arrayBuffer()).rejects.toThrow();
    await r.hooks.settled();
    expect(r.logs.join("\n")).toContain("upstream response broke mid-body");
  });
});

describe("router front: the fast path for common heads beside the full one", () => {
  it("routes each pipelined keep-alive request by its own Host, whichever path its head takes, and rewrites each response for its route", async () => {
    const seen: string[] = [];
    const guest = (name: string) =>
      upstream({
        fetch: (req) => {
          const h = req.headers;
          seen.push(`${name} ${new URL(req.url).pathname} xff=${h.get("x-forwarded-for")} xfh=${h.get("x-forwarded-host")} prefix=${h.get("x-forwarded-prefix")} ka=${h.get("keep-alive")}`);
          return new Response(`${name} ${new URL(req.url).pathname}`, { headers: { "set-cookie": "s=1; Path=/" } });
        },
      });
    using web = guest("web");
    using api = guest("api");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr).serve("inst-api", "api", api.addr));
    const req = (path: string, host: string, ...extra: string[]) => [`GET ${path} HTTP/1.1`, `Host: ${host}`, ...extra, "", ""].join("\r\n");
    const sent = [
      req("/one", "web.localhost", "Connection: keep-alive", "Keep-Alive: timeout=5"), // fast path
      req("/two", "api.localhost", "X-Forwarded-For: 10.0.0.1"), // full path (a client X-Forwarded-For is merged)
      req("/web/three", "127.0.0.1"), // fast path, path prefix: the guest's Set-Cookie is scoped by the full response path
      req("/four", "api.localhost"), // fast path again, another instance
    ];
    const text = await raw(r.router.httpPort, sent.join(""), (t) => t.split("HTTP/1.1 200").length === 5 && t.endsWith("api /four"));
    const responses = text.split("HTTP/1.1 200").slice(1);
    expect(responses.map((part) => part.slice(part.indexOf("\r\n\r\n") + 4))).toEqual(["web /one", "api /two", "web /three", "api /four"]);
    const headOf = (i: number) => responses[i]!.slice(0, responses[i]!.indexOf("\r\n\r\n")).toLowerCase();
    // NAME.localhost is its own origin: no sandbox; the shared origin (path prefix) is sandboxed and its cookies scoped.
    expect([0, 1, 2, 3].map((i) => headOf(i).includes("content-security-policy: sandbox"))).toEqual([false, false, true, false]);
    expect(headOf(2)).toContain("set-cookie: s=1; path=/web");
    expect(headOf(0)).toContain("set-cookie: s=1; path=/\r\n");
    expect(seen).toEqual([
      "web /one xff=127.0.0.1 xfh=web.localhost prefix=null ka=null",
      "api /two xff=10.0.0.1, 127.0.0.1 xfh=api.localhost prefix=null ka=null",
      "web /three xff=127.0.0.1 xfh=127.0.0.1 prefix=/web ka=null",
      "api /four xff=127.0.0.1 xfh=api.localhost prefix=null ka=null",
    ]);
    await r.hooks.settled();
    expect(r.hooks.total).toBe(4);
  });

  it("never passes the web UI's cookie, and hands an upgrade after fast-path requests over to Bun.serve", async () => {
    const cookies: (string | null)[] = [];
    using web = upstream({ fetch: (req) => (cookies.push(req.headers.get("cookie")), new Response("ok")) });
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr));
    const req = (...extra: string[]) => ["GET / HTTP/1.1", "Host: 127.0.0.1", ...extra, "", ""].join("\r\n");
    const sent = [req("Cookie: a=1"), req("Cookie: a=2; aegis_ui_8098=secret"), req("Upgrade: h2c", "Connection: Upgrade")];
    const text = await raw(r.router.httpPort, sent.join(""), (t) => t.split("\r\n\r\nok").length === 4);
    expect(text.split("\r\n\r\nok").length).toBe(4);
    expect(cookies).toEqual(["a=1", "a=2", null]);
  });
});
