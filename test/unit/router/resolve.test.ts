import { describe, expect, it } from "bun:test";
import { isAppError } from "../../../src/api/errors.ts";
import { directRoute, hostName, requestTarget, resolveRoute } from "../../../src/daemon/router/resolve.ts";
import type { ServedInstance } from "../../../src/daemon/router/types.ts";

const web: ServedInstance = { instanceId: "inst-aaa", handle: "web", guestPort: 8080 };
const api: ServedInstance = { instanceId: "inst-bbb", handle: "api", guestPort: 3000 };
const origin = "http://127.0.0.1:8099";

describe("hostName", () => {
  it("extracts NAME from NAME.localhost with or without a port, case-insensitively", () => {
    expect(hostName("web.localhost")).toBe("web");
    expect(hostName("Web.LocalHost:8099")).toBe("web");
    expect(hostName("web.localhost.:8099")).toBe("web");
  });
  it("ignores hosts that are not NAME.localhost", () => {
    for (const h of [null, "", "localhost", "localhost:8099", "127.0.0.1:8099", "[::1]:8099", "web.example.com", ".localhost"]) expect(hostName(h)).toBeUndefined();
  });
  it("trims the header, and never takes a bracketed (IPv6-style) host for a name", () => {
    expect(hostName("  web.localhost:8099 ")).toBe("web");
    expect(hostName("[web].localhost")).toBeUndefined();
    expect(hostName("web.localhost.evil.com")).toBeUndefined();
    expect(hostName("weblocalhost")).toBeUndefined();
  });
});

describe("requestTarget", () => {
  it("keeps the raw path and query of an absolute URL", () => {
    expect(requestTarget("http://h:1/a/../b%2Fc?x=1&y")).toBe("/a/../b%2Fc?x=1&y");
    expect(requestTarget("http://h:1/")).toBe("/");
    expect(requestTarget("http://h:1?q=1")).toBe("/?q=1");
    expect(requestTarget("http://h:1")).toBe("/");
    expect(requestTarget("http://h:1/a/b")).toBe("/a/b");
  });
  it("keeps a query that contains slashes when the URL has no path", () => {
    expect(requestTarget("http://h:1?next=/admin/x")).toBe("/?next=/admin/x");
  });
  it("passes an origin-form target through", () => {
    expect(requestTarget("/a/b?c=/d")).toBe("/a/b?c=/d");
    expect(requestTarget("?q=1")).toBe("/?q=1");
    expect(requestTarget("?next=/admin")).toBe("/?next=/admin");
  });
  it("finds the path after the scheme's own slashes", () => {
    expect(requestTarget("://h/a")).toBe("/a");
  });
});

describe("resolveRoute", () => {
  it("routes by Host NAME.localhost (handle or id) with the path untouched", () => {
    expect(resolveRoute([web, api], "api.localhost:8099", "/web/x?q=1", origin)).toEqual({ instance: api, path: "/web/x?q=1", rule: "host" });
    expect(resolveRoute([web, api], "inst-aaa.localhost", "/", origin)).toEqual({ instance: web, path: "/", rule: "host" });
  });

  it("404s an unknown Host name instead of falling through to another instance", () => {
    const r = resolveRoute([web], "nope.localhost:8099", "/", origin);
    expect(isAppError(r)).toBe(true);
    if (!isAppError(r)) return;
    expect(r.status).toBe(404);
    expect(r.message).toContain('no instance named "nope"');
    expect(r.message).toContain('"web" (inst-aaa)');
  });

  it("routes by path prefix, strips it and keeps the query", () => {
    expect(resolveRoute([web, api], "127.0.0.1:8099", "/api/v1/items?limit=2", origin)).toEqual({ instance: api, path: "/v1/items?limit=2", prefix: "/api", rule: "path" });
    expect(resolveRoute([web, api], "127.0.0.1:8099", "/web", origin)).toEqual({ instance: web, path: "/", prefix: "/web", rule: "path" });
    expect(resolveRoute([web, api], "localhost", "/web?x=1", origin)).toEqual({ instance: web, path: "/?x=1", prefix: "/web", rule: "path" });
    expect(resolveRoute([web, api], null, "/inst-bbb/", origin)).toEqual({ instance: api, path: "/", prefix: "/inst-bbb", rule: "path" });
  });

  it("uses the single served instance as the default route, prefix or not", () => {
    expect(resolveRoute([web], "127.0.0.1:8099", "/index.html?v=2", origin)).toEqual({ instance: web, path: "/index.html?v=2", rule: "default" });
    expect(resolveRoute([web], "127.0.0.1:8099", "/web/x", origin)).toMatchObject({ path: "/x", rule: "path" });
  });

  it("404s with the choices when several instances are served and nothing matches", () => {
    const r = resolveRoute([web, api], "127.0.0.1:8099", "/other/x", origin);
    if (!isAppError(r)) throw new Error("expected a 404");
    expect(r.code).toBe("not_found");
    expect(r.message).toBe('no served instance matches path "/other/x" on host "127.0.0.1:8099"; 2 instances are served: "web" (inst-aaa), "api" (inst-bbb)');
    expect(r.hint).toBe("pick one by host (http://web.localhost:8099/) or by path prefix (http://127.0.0.1:8099/web/)");
    expect(r.data).toEqual({ instances: [web, api] });
  });

  it("404s when nothing is served, saying how to serve one", () => {
    const r = resolveRoute([], null, "/", origin);
    if (!isAppError(r)) throw new Error("expected a 404");
    expect(r.code).toBe("not_found");
    expect(r.message).toBe('no instance is being served, so nothing answers path "/"');
    expect(r.hint).toBe("start one with 'aegis run --expose PORT -- CMD' or 'aegis instance start --expose PORT'");
    expect(r.data).toEqual({ instances: [] });
    const byHost = resolveRoute([], "web.localhost", "/", origin);
    if (!isAppError(byHost)) throw new Error("expected a 404");
    expect(byHost.message).toBe('no instance is being served, so nothing answers host "web.localhost" (no instance named "web")');
  });

  it("names an instance without a handle once, and builds the host hint from a localhost origin", () => {
    const bare: ServedInstance = { instanceId: "inst-ccc", handle: "inst-ccc", guestPort: 80 };
    const r = resolveRoute([bare, web], "localhost:8099", "/nope", "http://localhost:8099");
    if (!isAppError(r)) throw new Error("expected a 404");
    expect(r.message).toBe('no served instance matches path "/nope" on host "localhost:8099"; 2 instances are served: "inst-ccc", "web" (inst-aaa)');
    expect(r.hint).toBe("pick one by host (http://inst-ccc.localhost:8099/) or by path prefix (http://localhost:8099/inst-ccc/)");
  });

  it("leaves out the host in the 404 when the request had none", () => {
    const r = resolveRoute([web, api], null, "/nope?x=1", origin);
    if (!isAppError(r)) throw new Error("expected a 404");
    expect(r.message).toStartWith('no served instance matches path "/nope"; 2 instances');
  });

  it("matches a percent-encoded prefix by its decoded name and strips it as sent", () => {
    expect(resolveRoute([web, api], null, "/%77eb/x?y=1", origin)).toEqual({ instance: web, path: "/x?y=1", prefix: "/%77eb", rule: "path" });
    expect(resolveRoute([web, api], null, "/API/x", origin)).toMatchObject({ instance: api, rule: "path" });
  });

  it("does not take a deeper segment for a prefix", () => {
    expect(isAppError(resolveRoute([web, api], null, "/x/web", origin))).toBe(true);
  });

  it("does not match an instance through a malformed escape", () => {
    expect(isAppError(resolveRoute([web, api], null, "/%E0%A4%A/x", origin))).toBe(true);
  });
});

describe("directRoute", () => {
  // What the daemon lets be named for a direct port route: one E2B sandbox, by handle or id, case-insensitively.
  const sandbox = { instanceId: "inst-e2b", handle: "sbx" };
  const lookup = (name: string) => ([sandbox.handle, sandbox.instanceId].includes(name.toLowerCase()) ? sandbox : undefined);
  const e2b = (id: string | null, port: string | null, host = "127.0.0.1:8099") => {
    const h = new Headers({ host });
    if (id !== null) h.set("E2b-Sandbox-Id", id);
    if (port !== null) h.set("E2b-Sandbox-Port", port);
    return h;
  };
  const refused = (r: unknown) => {
    if (!isAppError(r)) throw new Error(`expected an error, got ${JSON.stringify(r)}`);
    return r;
  };

  it("routes the E2B headers to that sandbox's port, path untouched", () => {
    expect(directRoute(e2b("sbx", "49983"), "/files?path=/a", [web], lookup)).toEqual({ instance: { ...sandbox, guestPort: 49983 }, path: "/files?path=/a", rule: "port" });
    expect(directRoute(e2b("INST-E2B", "1"), "/", [], lookup)).toEqual({ instance: { ...sandbox, guestPort: 1 }, path: "/", rule: "port" });
    expect(directRoute(e2b("sbx", "65535"), "/", [], lookup)).toEqual({ instance: { ...sandbox, guestPort: 65535 }, path: "/", rule: "port" });
  });

  it("lets the E2B headers win over a NAME.localhost host", () => {
    expect(directRoute(e2b("sbx", "8080", "web.localhost:8099"), "/x", [web], lookup)).toEqual({ instance: { ...sandbox, guestPort: 8080 }, path: "/x", rule: "port" });
  });

  it("refuses one E2B header without the other", () => {
    for (const h of [e2b("sbx", null), e2b(null, "8080")]) {
      const r = refused(directRoute(h, "/", [web], lookup));
      expect(r.code).toBe("invalid_request");
      expect(r.status).toBe(400);
      expect(r.message).toBe("E2b-Sandbox-Id and E2b-Sandbox-Port must be sent together, the port as a number 1-65535");
    }
  });

  it("refuses an E2B port that is not a number 1-65535", () => {
    for (const port of ["0", "65536", "99999", "123456", "", "abc", "80a", "a80", "8.0", "-1"]) {
      const r = refused(directRoute(e2b("sbx", port), "/", [web], lookup));
      expect(r.code).toBe("invalid_request");
    }
  });

  it("404s an E2B sandbox id that names nothing", () => {
    const r = refused(directRoute(e2b("ghost", "8080"), "/", [web], lookup));
    expect(r.code).toBe("not_found");
    expect(r.status).toBe(404);
    expect(r.message).toBe('no instance or sandbox "ghost" (E2b-Sandbox-Id)');
  });

  it("routes a PORT-NAME.localhost host to that port of NAME", () => {
    const port = (host: string) => directRoute(new Headers({ host }), "/a?b=1", [web], lookup);
    expect(port("49983-sbx.localhost:8099")).toEqual({ instance: { ...sandbox, guestPort: 49983 }, path: "/a?b=1", rule: "port" });
    expect(port("1-Inst-E2B.localhost")).toEqual({ instance: { ...sandbox, guestPort: 1 }, path: "/a?b=1", rule: "port" });
    expect(port("65535-sbx.localhost")).toEqual({ instance: { ...sandbox, guestPort: 65535 }, path: "/a?b=1", rule: "port" });
  });

  it("leaves every other host to the normal rules", () => {
    const none = (host: string | null) => {
      const headers = new Headers();
      if (host !== null) headers.set("host", host);
      return directRoute(headers, "/", [web], lookup);
    };
    for (const host of [null, "127.0.0.1:8099", "localhost:8099", "8080-sbx.example.com", "web.localhost", "sbx.localhost", "0-sbx.localhost", "65536-sbx.localhost", "123456-sbx.localhost", "x8080-sbx.localhost", "8080-.localhost", "8080sbx.localhost", "abc-sbx.localhost", "8080-ghost.localhost"]) {
      expect(none(host)).toBeNull();
    }
  });

  it("does not split a host that itself names an instance", () => {
    const served: ServedInstance = { instanceId: "inst-ddd", handle: "8080-sbx", guestPort: 80 };
    expect(directRoute(new Headers({ host: "8080-sbx.localhost" }), "/", [served], lookup)).toBeNull();
    const named = { instanceId: "inst-eee", handle: "3000-sbx" };
    const both = (name: string) => (name === "3000-sbx" ? named : lookup(name));
    expect(directRoute(new Headers({ host: "3000-sbx.localhost" }), "/", [web], both)).toBeNull();
  });
});
