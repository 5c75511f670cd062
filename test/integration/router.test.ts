/**
 * The router end to end over real sockets, without VMs: local Bun servers
 * stand in for guest ports and TestHooks for the daemon (with a slow or
 * failing wake when a test asks for one).
 */
import { describe, expect, it } from "bun:test";
import { request as httpRequest } from "node:http";
import { deadPort, startRouter, TestHooks, upstream } from "../unit/router/_fixtures.ts";

const MB = 1024 * 1024;

/** An upstream answering with what it received. */
function echoUpstream(name: string) {
  return upstream({
    fetch: async (req) =>
      Response.json({ name, method: req.method, url: new URL(req.url).pathname + new URL(req.url).search, raw: req.url, headers: Object.fromEntries(req.headers), body: await req.text() }),
  });
}

/** A response's JSON body, loosely typed for assertions. */
async function json(res: Response | Promise<Response>): Promise<any> {
  return (await res).json();
}

/** A deferred promise. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("router: routing", () => {
  it("routes by Host NAME.localhost, by path prefix with the prefix stripped, and 404s the rest", async () => {
    using web = echoUpstream("web");
    using api = echoUpstream("api");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr).serve("inst-api", "api", api.addr));

    const byHost = await json(fetch(`${r.url}/api/x?q=1`, { headers: { host: "web.localhost:8099" } }));
    expect(byHost).toMatchObject({ name: "web", url: "/api/x?q=1" });
    expect(byHost.headers).toMatchObject({ host: "web.localhost:8099", "x-forwarded-host": "web.localhost:8099", "x-forwarded-proto": "http", "x-forwarded-for": "127.0.0.1" });

    const byPath = await json(fetch(`${r.url}/api/v1/items?limit=2`));
    expect(byPath).toMatchObject({ name: "api", url: "/v1/items?limit=2" });
    expect(byPath.headers["x-forwarded-prefix"]).toBe("/api");
    expect((await json(fetch(`${r.url}/inst-web`))).url).toBe("/");

    const miss = await fetch(`${r.url}/nothing`);
    expect(miss.status).toBe(404);
    const body = await json(miss);
    expect(body.error.code).toBe("not_found");
    expect(body.error.message).toContain('2 instances are served: "web" (inst-web), "api" (inst-api)');
    expect(body.error.data.instances).toHaveLength(2);
    expect((await fetch(`${r.url}/`, { headers: { host: "nope.localhost" } })).status).toBe(404);
    await r.hooks.settled();
  });

  it("sends everything to the single served instance (the default route)", async () => {
    using web = echoUpstream("web");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr));
    expect(await json(fetch(`${r.url}/deep/path?x=1`))).toMatchObject({ name: "web", url: "/deep/path?x=1" });
  });

  it("forwards escapes in the request target as sent (dot segments resolved, as Bun.serve does)", async () => {
    using web = echoUpstream("web");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr));
    const got = await new Promise<string>((resolve, reject) => {
      const q = httpRequest({ host: "127.0.0.1", port: r.router.httpPort, path: "/a/../b%2Fc?x=%20" }, (res) => {
        let d = "";
        res.on("data", (c) => (d += c));
        res.on("end", () => resolve(JSON.parse(d).raw));
      });
      q.on("error", reject);
      q.end();
    });
    expect(new URL(got).pathname + new URL(got).search).toBe("/b%2Fc?x=%20");
  });
});

describe("router: one browser origin per instance", () => {
  /** A guest page that sets cookies and its own CSP. */
  function pageUpstream(name: string) {
    return upstream({
      fetch: () => {
        const h = new Headers({ "content-type": "text/html", "content-security-policy": "default-src 'self'" });
        h.append("set-cookie", `${name}-session=1; Path=/; HttpOnly`);
        h.append("set-cookie", `${name}-pref=2; Path=/settings`);
        h.append("set-cookie", `${name}-bare=3`);
        return new Response(`<script>fetch('/other/').then(r => r.text())</script>`, { headers: h });
      },
    });
  }
  const policies = (res: Response) => res.headers.get("content-security-policy")!.split(",").map((p) => p.trim());

  it("sandboxes path-prefix pages into an opaque origin, keeping the guest's CSP and scoping its cookies", async () => {
    using web = pageUpstream("web");
    using api = pageUpstream("api");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr).serve("inst-api", "api", api.addr));
    const res = await fetch(`${r.url}/web/index.html`);
    const [guest, ours] = policies(res);
    expect(guest).toBe("default-src 'self'");
    expect(ours!.startsWith("sandbox ")).toBe(true);
    expect(ours).toContain("allow-scripts");
    expect(ours).not.toContain("allow-same-origin");
    expect(res.headers.getSetCookie()).toEqual(["web-session=1; Path=/web; HttpOnly", "web-pref=2; Path=/web/settings", "web-bare=3; Path=/web"]);
    await res.text();
  });

  it("sandboxes the default route too (it is the same shared origin)", async () => {
    using web = pageUpstream("web");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr));
    const res = await fetch(`${r.url}/index.html`);
    expect(policies(res)[1]!.startsWith("sandbox ")).toBe(true);
    expect(res.headers.getSetCookie()[0]).toBe("web-session=1; Path=/; HttpOnly");
    await res.text();
  });

  it("leaves NAME.localhost responses as the guest sent them (each is its own origin)", async () => {
    using web = pageUpstream("web");
    using api = pageUpstream("api");
    await using r = await startRouter(new TestHooks().serve("inst-web", "web", web.addr).serve("inst-api", "api", api.addr));
    const res = await fetch(`${r.url}/index.html`, { headers: { host: "web.localhost:8099" } });
    expect(res.headers.get("content-security-policy")).toBe("default-src 'self'");
    expect(res.headers.getSetCookie()).toEqual(["web-session=1; Path=/; HttpOnly", "web-pref=2; Path=/settings", "web-bare=3"]);
    await res.text();
  });
});

describe("router: HTTP semantics", () => {
  it("preserves method, status, headers and body, and neither follows redirects nor decompresses", async () => {
    const gz = Bun.gzipSync(new TextEncoder().encode("compressed payload"));
    using up = upstream({
      fetch: async (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/redirect") return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
        if (req.method === "HEAD") return new Response(null, { headers: { "content-length": "1000000", etag: '"v1"' } });
        if (path === "/gzip") return new Response(gz, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
        const headers = new Headers([["set-cookie", "a=1"], ["set-cookie", "b=2"], ["x-custom", "yes"]]);
        return new Response(`${req.method} ${await req.text()}`, { status: 418, statusText: "I'm a teapot", headers });
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const res = await fetch(`${r.url}/x`, { method: "PATCH", body: "payload" });
    expect(res.status).toBe(418);
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(res.headers.get("x-custom")).toBe("yes");
    expect(res.headers.get("content-length")).toBe("13");
    expect(await res.text()).toBe("PATCH payload");

    const head = await fetch(`${r.url}/file`, { method: "HEAD" });
    expect([head.status, head.headers.get("content-length"), head.headers.get("etag")]).toEqual([200, "1000000", '"v1"']);

    const redirect = await fetch(`${r.url}/redirect`, { redirect: "manual" });
    expect([redirect.status, redirect.headers.get("location")]).toEqual([302, "/elsewhere"]);

    const raw = await fetch(`${r.url}/gzip`, { decompress: false } as RequestInit);
    expect(raw.headers.get("content-encoding")).toBe("gzip");
    expect(new Uint8Array(await raw.arrayBuffer())).toEqual(gz);
    await r.hooks.settled();
  });

  it("streams a 50 MB download to the client before the upstream has produced it", async () => {
    const clientGotFirst = deferred();
    const chunk = new Uint8Array(MB).fill(7);
    using up = upstream({
      fetch: () => {
        let sent = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              if (sent === 1) await clientGotFirst.promise; // nothing more until the client saw chunk 1
              if (sent === 50) return c.close();
              c.enqueue(chunk);
              sent++;
            },
          }),
          { headers: { "content-length": String(50 * MB) } },
        );
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const res = await fetch(`${r.url}/big`);
    // Bun.serve re-frames a streamed body as chunked (oven-sh/bun#10507); the bytes are what matter.
    expect(res.headers.get("content-length") ?? res.headers.get("transfer-encoding")).toBeOneOf([String(50 * MB), "chunked"]);
    let total = 0;
    for await (const part of res.body!) {
      if (total === 0) clientGotFirst.resolve();
      total += part.length;
    }
    expect(total).toBe(50 * MB);
    await r.hooks.settled();
  });

  it("streams a 50 MB upload to the upstream before the client has finished sending it", async () => {
    const upstreamGotFirst = deferred();
    using up = upstream({
      fetch: async (req) => {
        let total = 0;
        for await (const part of req.body!) {
          if (total === 0) upstreamGotFirst.resolve();
          total += part.length;
        }
        return Response.json({ total, contentLength: req.headers.get("content-length") });
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const chunk = new Uint8Array(MB).fill(1);
    let sent = 0;
    const body = new ReadableStream({
      async pull(c) {
        if (sent === 1) await upstreamGotFirst.promise; // nothing more until the upstream saw chunk 1
        if (sent === 50) return c.close();
        c.enqueue(chunk);
        sent++;
      },
    });
    const res = await fetch(`${r.url}/upload`, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(await json(res)).toEqual({ total: 50 * MB, contentLength: null });
    await r.hooks.settled();
  });

  it("keeps a client's Content-Length on a streamed upload", async () => {
    using up = upstream({ fetch: async (req) => Response.json({ n: (await req.arrayBuffer()).byteLength, cl: req.headers.get("content-length"), te: req.headers.get("transfer-encoding") }) });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const res = await fetch(`${r.url}/`, { method: "POST", body: new Uint8Array(3 * MB) });
    expect(await json(res)).toEqual({ n: 3 * MB, cl: String(3 * MB), te: null });
  });

  it("delivers server-sent events as they are produced", async () => {
    using up = upstream({
      fetch: () => {
        let i = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              if (i > 0) await Bun.sleep(150);
              if (i === 4) return c.close();
              c.enqueue(new TextEncoder().encode(`data: ${i++} ${Date.now()}\n\n`));
            },
          }),
          { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
        );
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const res = await fetch(`${r.url}/events`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const lags: number[] = [];
    const seen: string[] = [];
    for await (const part of res.body!.pipeThrough(new TextDecoderStream())) {
      for (const ev of part.split("\n\n").filter(Boolean)) {
        const [, n, at] = ev.split(" ");
        seen.push(n!);
        lags.push(Date.now() - Number(at));
      }
    }
    expect(seen).toEqual(["0", "1", "2", "3"]);
    for (const lag of lags) expect(lag).toBeLessThan(100); // each event arrived long before the next was made
    await r.hooks.settled();
  });
});

describe("router: waking and failures", () => {
  it("holds requests during a slow wake, shares one wake between them and answers all", async () => {
    using web = echoUpstream("web");
    const hooks = new TestHooks().serve("inst-1", "web", web.addr);
    hooks.asleep.add("inst-1");
    hooks.wakeDelayMs = 400;
    await using r = await startRouter(hooks);
    const t0 = performance.now();
    const pending = Array.from({ length: 20 }, (_, i) => fetch(`${r.url}/req/${i}`, { method: i % 2 ? "POST" : "GET", body: i % 2 ? `body ${i}` : undefined }));
    await Bun.sleep(100);
    expect(hooks.open).toBe(20); // waiting requests count as activity
    const res = await Promise.all(pending);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
    const bodies = await Promise.all(res.map((x) => json(x)));
    expect(bodies.map((b) => b.url)).toEqual(Array.from({ length: 20 }, (_, i) => `/req/${i}`));
    expect(bodies.filter((b) => b.method === "POST").map((b) => b.body)).toEqual(Array.from({ length: 10 }, (_, i) => `body ${2 * i + 1}`));
    expect(hooks.wakes).toBe(1);
    await hooks.settled();
    expect(hooks.total).toBe(20);
  });

  it("answers 502 in the error envelope when the guest port does not accept", async () => {
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", { host: "127.0.0.1", port: deadPort() }));
    const res = await fetch(`${r.url}/x`);
    expect(res.status).toBe(502);
    const body = await json(res);
    expect(body.error.code).toBe("backend_error");
    expect(body.error.message).toStartWith('instance "web" (inst-1) did not answer on guest port 8080');
    expect(body.error.hint).toContain("0.0.0.0:8080");
    expect((await fetch(`${r.url}/x`, { method: "POST", body: "x" })).status).toBe(502);
    await r.hooks.settled();
  });

  it("answers 503 with the hook's message when the wake fails", async () => {
    using web = echoUpstream("web");
    const hooks = new TestHooks().serve("inst-1", "web", web.addr);
    hooks.asleep.add("inst-1");
    hooks.wakeDelayMs = 20;
    hooks.wakeError = new Error('snapshot of instance "web" is stale and the cold boot failed: qemu exited 1');
    await using r = await startRouter(hooks);
    const res = await fetch(`${r.url}/x`);
    expect(res.status).toBe(503);
    const body = await json(res);
    expect(body.error.code).toBe("unavailable");
    expect(body.error.message).toBe('could not wake instance "web" (inst-1) for guest port 8080: snapshot of instance "web" is stale and the cold boot failed: qemu exited 1');
    await hooks.settled();
  });

  it("ends the activity of a download the client abandons, and cancels the upstream", async () => {
    const cancelled = deferred<string>();
    using up = upstream({
      fetch: () =>
        new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(10);
              c.enqueue(new Uint8Array(64 * 1024));
            },
            cancel: () => cancelled.resolve("cancelled"),
          }),
        ),
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const ac = new AbortController();
    const res = await fetch(`${r.url}/endless`, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(r.hooks.open).toBe(1);
    ac.abort();
    expect(await Promise.race([cancelled.promise, Bun.sleep(2000).then(() => "timeout")])).toBe("cancelled");
    await r.hooks.settled();
  });

  it("survives broken clients: garbage, a reset mid-upload, and a client gone during a wake", async () => {
    using web = echoUpstream("web");
    const hooks = new TestHooks().serve("inst-1", "web", web.addr);
    await using r = await startRouter(hooks);
    const port = r.router.httpPort;
    const garbage = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    garbage.write("\x00\x01 not http at all\r\n\r\n");
    const midUpload = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    midUpload.write("POST /x HTTP/1.1\r\nHost: web.localhost\r\nContent-Length: 1000000\r\n\r\npartial");
    await Bun.sleep(50);
    midUpload.terminate();
    hooks.asleep.add("inst-1");
    hooks.wakeDelayMs = 200;
    const duringWake = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    duringWake.write("GET /x HTTP/1.1\r\nHost: web.localhost\r\n\r\n");
    await Bun.sleep(50);
    duringWake.terminate();
    garbage.terminate();
    await Bun.sleep(250);
    expect(await json(fetch(`${r.url}/still-alive`))).toMatchObject({ url: "/still-alive" });
    await hooks.settled();
  });
});

describe("router: WebSocket", () => {
  function wsUpstream(closes: { code: number; reason: string }[]) {
    return upstream<undefined>({
      fetch: (req, server) => (server.upgrade(req, { headers: req.headers.get("sec-websocket-protocol") ? { "Sec-WebSocket-Protocol": "echo.v1" } : undefined }) ? undefined : new Response("not a websocket", { status: 400 })),
      websocket: {
        open: (ws) => void ws.send("hello from guest"),
        message: (ws, m) => void (m === "close me" ? ws.close(4002, "guest says bye") : ws.send(m)),
        close: (_ws, code, reason) => void closes.push({ code, reason }),
      },
    });
  }

  async function open(url: string, protocols?: string[]) {
    const ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    const messages: (string | ArrayBuffer)[] = [];
    const waiters: (() => void)[] = [];
    ws.onmessage = (e) => {
      messages.push(e.data);
      waiters.shift()?.();
    };
    const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
    await new Promise((res, rej) => ((ws.onopen = res), (ws.onerror = rej)));
    const next = async () => {
      if (messages.length === 0) await new Promise<void>((r) => waiters.push(r));
      return messages.shift()!;
    };
    return { ws, next, closed };
  }

  it("echoes text and binary frames end to end and passes the client's close code", async () => {
    const closes: { code: number; reason: string }[] = [];
    using up = wsUpstream(closes);
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const c = await open(`${r.url.replace("http", "ws")}/socket`, ["echo.v1", "other"]);
    expect(c.ws.protocol).toBe("echo.v1");
    expect(await c.next()).toBe("hello from guest");
    c.ws.send("text frame");
    expect(await c.next()).toBe("text frame");
    const bin = new Uint8Array(256 * 1024).map((_, i) => i % 251);
    c.ws.send(bin);
    const back = await c.next();
    expect(back).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(back as ArrayBuffer)).toEqual(bin);
    expect(r.hooks.open).toBe(1); // an open WebSocket keeps the instance busy
    c.ws.close(4001, "client says bye");
    await c.closed;
    await r.hooks.settled();
    await Bun.sleep(20);
    expect(closes).toEqual([{ code: 4001, reason: "client says bye" }]);
  });

  it("passes the guest's close code to the client", async () => {
    using up = wsUpstream([]);
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const c = await open(`${r.url.replace("http", "ws")}/`);
    await c.next();
    c.ws.send("close me");
    const ev = await c.closed;
    expect([ev.code, ev.reason]).toEqual([4002, "guest says bye"]);
    await r.hooks.settled();
  });

  it("wakes the instance for an upgrade and 502s when the guest refuses it", async () => {
    using up = wsUpstream([]);
    using plain = echoUpstream("plain");
    const hooks = new TestHooks().serve("inst-1", "web", up.addr).serve("inst-2", "plain", plain.addr);
    hooks.asleep.add("inst-1");
    hooks.wakeDelayMs = 200;
    await using r = await startRouter(hooks);
    const c = await open(`${r.url.replace("http", "ws")}/web/`);
    expect(await c.next()).toBe("hello from guest");
    expect(hooks.wakes).toBe(1);
    c.ws.close();
    await c.closed;
    const refused = await fetch(`${r.url}/inst-2/`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(refused.status).toBe(502);
    expect((await json(refused)).error.message).toContain('instance "plain" (inst-2) did not answer on guest port 8080');
    await hooks.settled();
  });

  it("moves many large messages both ways in order without loss", async () => {
    const big = (i: number) => new Uint8Array(256 * 1024).fill(i % 256);
    using up = upstream<undefined>({
      fetch: (req, server) => (server.upgrade(req) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        maxPayloadLength: 1 << 20,
        backpressureLimit: 0, // buffer instead of dropping: the router paused its read side

        message: (ws, m) => {
          if (m === "flood") for (let i = 0; i < 200; i++) ws.send(big(i));
          else ws.send(m); // echo
        },
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const c = await open(`${r.url.replace("http", "ws")}/`);
    c.ws.send("flood");
    for (let i = 0; i < 200; i++) expect(new Uint8Array((await c.next()) as ArrayBuffer)[0]).toBe(i % 256);
    for (let i = 0; i < 200; i++) c.ws.send(big(i));
    for (let i = 0; i < 200; i++) {
      const m = new Uint8Array((await c.next()) as ArrayBuffer);
      expect([m.length, m[0]]).toEqual([256 * 1024, i % 256]);
    }
    c.ws.close();
    await c.closed;
    await r.hooks.settled();
  });

  it("closes an instance's WebSockets when the instance is removed", async () => {
    const closes: { code: number; reason: string }[] = [];
    using up = wsUpstream(closes);
    await using r = await startRouter(new TestHooks().serve("inst-1", "web", up.addr));
    const c = await open(`${r.url.replace("http", "ws")}/`);
    await c.next();
    expect(r.router.openConnections("inst-1")).toBe(1);
    r.router.removeInstance("inst-1");
    expect((await c.closed).code).toBe(1001);
    await r.hooks.settled();
    expect(r.router.openConnections()).toBe(0);
  });
});

describe("router: TCP forwards", () => {
  /** Connect, send `parts`, half-close, and collect everything until the server closes. */
  async function talk(port: number, parts: string[]): Promise<{ got: string; sawEnd: boolean }> {
    const done = deferred<{ got: string; sawEnd: boolean }>();
    let got = "";
    let sawEnd = false;
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_s, d) => void (got += d.toString()),
        end: (sock) => {
          sawEnd = true;
          sock.end();
        },
        close: () => done.resolve({ got, sawEnd: sawEnd || got.endsWith("bye") }),
      },
    });
    for (const p of parts) {
      s.write(p);
      await Bun.sleep(10);
    }
    s.shutdown();
    return done.promise;
  }

  /** Echo server that answers a FIN with "bye" and then closes. */
  function echoTcp() {
    const finSeen = { value: 0 };
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        data: (s, d) => void s.write(d),
        end: (s) => {
          finSeen.value++;
          s.end("bye");
        },
      },
    });
    return { finSeen, addr: { host: "127.0.0.1", port: server.port }, [Symbol.dispose]: () => server.stop(true) };
  }

  it("pipes bytes both ways and passes a half-close through", async () => {
    using echo = echoTcp();
    const hooks = new TestHooks().serve("inst-1", "db", echo.addr, 5432);
    await using r = await startRouter(hooks);
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    expect(port).toBeGreaterThan(0);
    expect(await talk(port, ["ping ", "pong"])).toEqual({ got: "ping pongbye", sawEnd: true });
    expect(echo.finSeen.value).toBe(1);
    await hooks.settled();
    expect(hooks.total).toBe(1);
  });

  it("wakes the instance on connect and delivers what the client sent meanwhile", async () => {
    using echo = echoTcp();
    const hooks = new TestHooks().serve("inst-1", "db", echo.addr, 5432);
    hooks.asleep.add("inst-1");
    hooks.wakeDelayMs = 300;
    await using r = await startRouter(hooks);
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    const results = await Promise.all([talk(port, ["early ", "data"]), talk(port, ["second"])]);
    expect(results.map((x) => x.got)).toEqual(["early databye", "secondbye"]);
    expect(hooks.wakes).toBe(1);
    await hooks.settled();
  });

  it("moves 50 MB each way with backpressure", async () => {
    // An echo that honours backpressure itself (the plain one drops bytes on a short write).
    type Echo = { queue: Uint8Array[] };
    const flush = (s: Bun.Socket<Echo>) => {
      while (s.data.queue.length) {
        const head = s.data.queue[0]!;
        const n = s.write(head);
        if (n < head.length) {
          s.data.queue[0] = head.subarray(Math.max(n, 0));
          return;
        }
        s.data.queue.shift();
      }
      s.resume();
    };
    const echo = Bun.listen<Echo>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open: (s) => void (s.data = { queue: [] }),
        data: (s, d) => {
          s.data.queue.push(new Uint8Array(d));
          s.pause();
          flush(s);
        },
        drain: flush,
        end: (s) => void s.end(),
      },
    });
    await using r = await startRouter(new TestHooks().serve("inst-1", "db", { host: "127.0.0.1", port: echo.port }, 5432));
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    const total = 50 * MB;
    const chunk = new Uint8Array(256 * 1024).fill(9);
    const done = deferred<number>();
    let received = 0;
    let written = 0;
    const pump = (s: Bun.Socket<undefined>) => {
      while (written < total) {
        const off = written % chunk.length;
        const n = s.write(chunk.subarray(off));
        written += Math.max(n, 0);
        if (n < chunk.length - off) return; // wait for drain
      }
      s.shutdown();
    };
    await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: { open: pump, drain: pump, data: (_s, d) => void (received += d.length), close: () => done.resolve(received) },
    });
    expect(await done.promise).toBe(total);
    await r.hooks.settled();
    echo.stop(true);
  });

  it("closes the client connection when the wake fails and logs why", async () => {
    const hooks = new TestHooks().serve("inst-1", "db", { host: "127.0.0.1", port: deadPort() }, 5432);
    hooks.asleep.add("inst-1");
    hooks.wakeError = new Error("cold boot failed: no kernel");
    await using r = await startRouter(hooks);
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    expect((await talk(port, ["x"])).got).toBe("");
    await hooks.settled();
    expect(r.logs.join("\n")).toContain("cold boot failed: no kernel");
  });

  it("closes the client connection when the guest port refuses and logs why", async () => {
    const hooks = new TestHooks().serve("inst-1", "db", { host: "127.0.0.1", port: deadPort() }, 5432);
    await using r = await startRouter(hooks);
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    expect((await talk(port, ["x"])).got).toBe("");
    await hooks.settled();
    expect(r.logs.join("\n")).toContain("router: TCP forward could not reach its target");
  });

  it("refuses a port that is already forwarded and frees it on removeInstance", async () => {
    using echo = echoTcp();
    await using r = await startRouter(new TestHooks().serve("inst-1", "db", echo.addr, 5432));
    const port = await r.router.addTcpForward(0, { instanceId: "inst-1", guestPort: 5432 });
    await expect(r.router.addTcpForward(port, { instanceId: "inst-2", guestPort: 1 })).rejects.toThrow(`port ${port} is already forwarded to guest port 5432 of instance "inst-1"`);
    r.router.removeInstance("inst-1");
    await expect(Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })).rejects.toThrow();
    expect(await r.router.addTcpForward(port, { instanceId: "inst-1", guestPort: 5432 })).toBe(port);
  });
});
