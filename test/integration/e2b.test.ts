/**
 * The E2B front of a real aegisd, without booting VMs: the API key (per
 * AEGIS_HOME, sealed on disk, stable across restarts), 401 for a wrong or
 * missing key with nothing created, E2B's error JSON for bad input, and the
 * envd side refusing unknown sandboxes.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { E2bEnv } from "../../src/api/schema/e2b.ts";
import { TestHome } from "../helpers/aegis.ts";

let home: TestHome;
let env: E2bEnv;

async function api(path: string, init: RequestInit & { key?: string | null } = {}): Promise<{ status: number; body: unknown }> {
  const headers = new Headers(init.headers);
  if (init.key !== null) headers.set("x-api-key", init.key ?? env.api_key);
  const res = await fetch(`${env.api_url}${path}`, { ...init, headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function instances(): Promise<unknown[]> {
  return JSON.parse((await home.ok(["instance", "list", "--json"])).stdout);
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
  env = E2bEnv.parse(JSON.parse((await home.ok(["e2b", "env", "--json"])).stdout));
});

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
});

describe("aegis e2b env", () => {
  it("prints export lines with a loopback API, the router domain and an e2b_ key", async () => {
    const lines = (await home.ok(["e2b", "env"])).stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^export E2B_API_URL=http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines[1]).toBe(`export E2B_SANDBOX_URL=${env.api_url}`);
    expect(lines[2]).toMatch(/^export E2B_DOMAIN=localhost:\d+$/);
    expect(lines[3]).toMatch(/^export E2B_API_KEY=e2b_[0-9a-f]{40}$/);
    const status = JSON.parse((await home.ok(["status", "--json"])).stdout) as { router_url: string };
    expect(env.domain).toBe(`localhost:${new URL(status.router_url).port}`);
  });

  it("keeps the key sealed on disk (0600) and the same across a daemon restart", async () => {
    const file = join(home.dir, "data", "e2b-api-key.sealed");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).not.toContain(env.api_key.slice(4));
    await home.ok(["down"]);
    await home.ok(["up"]);
    const again = E2bEnv.parse(JSON.parse((await home.ok(["e2b", "env", "--json"])).stdout));
    expect(again.api_key).toBe(env.api_key);
    env = again;
  });

  it("refuses unknown flags", async () => {
    const r = await home.run(["e2b", "env", "--jsn"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--jsn");
  });
});

describe("the E2B REST API", () => {
  it("answers a missing or wrong API key with 401 and E2B's error JSON, creating nothing", async () => {
    for (const key of [null, "e2b_0000000000000000000000000000000000000000", `${env.api_key}x`]) {
      const created = await api("/v2/sandboxes", { method: "POST", key, headers: { "content-type": "application/json" }, body: JSON.stringify({ templateID: "base" }) });
      expect(created.status).toBe(401);
      expect(created.body).toMatchObject({ code: 401 });
      expect(String((created.body as { message: string }).message)).toContain("API key");
      expect((await api("/v2/sandboxes", { key })).status).toBe(401);
      expect((await api("/sandboxes/x", { method: "DELETE", key })).status).toBe(401);
    }
    expect(await instances()).toEqual([]);
  });

  it("accepts the key as a Bearer token too", async () => {
    const r = await api("/v2/sandboxes", { key: null, headers: { authorization: `Bearer ${env.api_key}` } });
    expect(r).toEqual({ status: 200, body: [] });
  });

  it("says what is wrong with a bad create body, and creates nothing", async () => {
    const post = (body: string) => api("/v2/sandboxes", { method: "POST", headers: { "content-type": "application/json" }, body });
    const cases: [string, RegExp][] = [
      ["{", /malformed JSON/],
      ["{}", /templateID/],
      [JSON.stringify({ templateID: "base", timeout: 0 }), /timeout.*at least 1 second/],
      [JSON.stringify({ templateID: "base", frobnicate: true }), /unknown field "frobnicate"/],
      [JSON.stringify({ templateID: "base", envVars: { "1BAD": "x" } }), /environment variable name/],
      [JSON.stringify({ templateID: "base", network: { allowOut: ["1.2.3.4"], rules: { "api.example.com": [{}] } } }), /network\.rules is not supported/],
      [JSON.stringify({ templateID: "base", network: { allowOut: ["1.2.3.4/40"] } }), /network\.allowOut\[0\] "1\.2\.3\.4\/40"/],
      [JSON.stringify({ templateID: "base", network: { allowOutt: [] } }), /unknown field "allowOutt"/],
      [JSON.stringify({ templateID: "base", mcp: {} }), /MCP gateway/],
    ];
    for (const [body, message] of cases) {
      const r = await post(body);
      expect(r.status).toBe(400);
      expect((r.body as { code: number }).code).toBe(400);
      expect((r.body as { message: string }).message).toMatch(message);
    }
    expect(await instances()).toEqual([]);
  });

  it("answers unknown sandboxes with 404 the way the SDK expects", async () => {
    for (const [method, path] of [
      ["GET", "/sandboxes/nope"],
      ["DELETE", "/sandboxes/nope"],
      ["POST", "/v2/sandboxes/nope/connect"],
      ["POST", "/sandboxes/nope/pause"],
      ["GET", "/sandboxes/nope/metrics"],
    ] as const) {
      const r = await api(path, { method, headers: { "content-type": "application/json" }, body: method === "POST" ? "{}" : undefined });
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ code: 404, message: 'sandbox "nope" not found' });
    }
    const timeout = await api("/sandboxes/nope/timeout", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ timeout: 10 }) });
    expect(timeout.status).toBe(404);
  });

  it("validates list filters", async () => {
    expect((await api("/v2/sandboxes?state=sleeping")).status).toBe(400);
    expect((await api("/v2/sandboxes?limit=0")).status).toBe(400);
    expect((await api("/v2/sandboxes?nextToken=bm9wZQ")).status).toBe(400);
    expect(await api("/v2/sandboxes?state=running,paused&metadata=a%3Db")).toEqual({ status: 200, body: [] });
  });

  it("answers envd calls for an unknown sandbox with 404, before anything else", async () => {
    const res = await fetch(`${env.sandbox_url}/files?path=/etc/hostname`, { headers: { "e2b-sandbox-id": "nope", "e2b-sandbox-port": "49983", "x-access-token": "t" } });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ code: 404, message: 'sandbox "nope" not found' });
  });
});

describe("AEGIS_E2B_PORT", () => {
  it("refuses a value that is not a port", async () => {
    await using other = new TestHome();
    const r = await other.run(["up"], { env: { AEGIS_E2B_PORT: "http" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain("AEGIS_E2B_PORT=http is not a port number");
  });
});

describe("E2B network options through the real SDK", () => {
  it("refuses what Aegis cannot honour, naming the field, and creates nothing", async () => {
    const { Sandbox } = await import("e2b");
    const opts = { apiKey: env.api_key, apiUrl: env.api_url, domain: env.domain, requestTimeoutMs: 30_000 };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ allowOut: ["api.example.com"], rules: { "api.example.com": [{ transform: { headers: { Authorization: "Bearer x" } } }] } }, /network\.rules is not supported/],
      [{ egressProxy: { address: "proxy.example.com:1080" } }, /network\.egressProxy is not supported/],
      [{ allowPublicTraffic: false }, /network\.allowPublicTraffic is not supported/],
      [{ maskRequestHost: "${PORT}-x.example.com" }, /network\.maskRequestHost is not supported/],
      [{ httpsPorts: [3000] }, /network\.httpsPorts is not supported/],
      [{ allowOut: ["not a host"] }, /network\.allowOut\[0\] "not a host": invalid network rule/],
      [{ denyOut: ({ allTraffic }: { allTraffic: string }) => [allTraffic, "10.0.0.0/33"] }, /network\.denyOut\[1\] "10\.0\.0\.0\/33"/],
    ];
    for (const [network, message] of cases) {
      const err = await Sandbox.create("base", { ...opts, network: network as never }).then(
        () => new Error("created"),
        (e: unknown) => e as Error,
      );
      expect(err.message).toMatch(message);
    }
    expect(await instances()).toEqual([]);
  });
  it("refuses to change the network of a sandbox, after a 404 for an unknown one", async () => {
    const r = await api("/sandboxes/nope/network", { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ allowOut: ["1.2.3.4"] }) });
    expect(r).toEqual({ status: 404, body: { code: 404, message: 'sandbox "nope" not found' } });
  });
});
