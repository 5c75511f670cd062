import { describe, expect, it } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";

/** A port nothing listens on right now (bound, then released). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

describe("aegis ui", () => {
  it("starts aegisd when needed and serves the UI on 127.0.0.1 behind the token, the Host check and the CSRF header", async () => {
    await using home = new TestHome();
    const port = freePort();
    const first = await home.ok(["ui", "--no-open", "--port", String(port)]);
    expect(first.stderr).toMatch(/aegisd started \(pid \d+\)/);
    const url = first.stdout.trim();
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/\\?token=[0-9a-f]{64}$`));
    const token = new URL(url).searchParams.get("token")!;
    expect(statSync(join(home.dir, "data", "ui.token")).mode & 0o777).toBe(0o600);
    // Idempotent: the same URL again, the daemon not restarted.
    const again = await home.ok(["ui", "--no-open", "--port", String(port), "--json"]);
    expect(JSON.parse(again.stdout)).toEqual({ url, port });
    expect(again.stderr).toBe("");

    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/instances`)).status).toBe(401);
    expect((await fetch(`${base}/instances?token=${"a".repeat(64)}`, { redirect: "manual" })).status).toBe(403);
    const exchange = await fetch(url, { redirect: "manual" });
    expect(exchange.status).toBe(303);
    const cookie = (exchange.headers.get("set-cookie") ?? "").split(";")[0]!;
    expect(cookie).toBe(`aegis_ui_${port}=${token}`);
    const page = await fetch(`${base}/instances`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<title>Instances · Aegis</title>");
    const status = await (await fetch(`${base}/status`, { headers: { cookie } })).text();
    expect(status).toContain("<h2>Doctor</h2>");
    expect(status).toMatch(/<td>QEMU<\/td><td>(yes|NO)<\/td>/);
    const rebound = await fetch(`${base}/instances`, { headers: { cookie, host: `rebind.example:${port}` } });
    expect(rebound.status).toBe(421);
    const csrf = /name="aegis-csrf" content="([0-9a-f]{64})"/.exec(html)![1]!;
    expect(csrf).not.toBe(token);
    expect((await fetch(`${base}/instances/nope/pause`, { method: "POST", headers: { cookie } })).status).toBe(403);
    const withCsrf = await fetch(`${base}/instances/nope/pause`, { method: "POST", headers: { cookie, "x-aegis-csrf": csrf } });
    expect(withCsrf.status).toBe(404);
    // Only loopback: the UI port is not reachable on another local address.
    await expect(fetch(`http://127.0.0.2:${port}/`)).rejects.toThrow();
  });

  it("refuses a port already in use, a second port while running, and bad flags, with clear errors", async () => {
    await using home = new TestHome();
    const busy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const taken = await home.run(["ui", "--no-open", "--port", String(busy.port)]);
      expect(taken.code).not.toBe(0);
      expect(taken.stdout).toBe("");
      expect(taken.stderr).toContain(`port ${busy.port} on 127.0.0.1 is already in use`);
      expect(taken.stderr).toContain("--port");
    } finally {
      busy.stop(true);
    }
    const port = freePort();
    await home.ok(["ui", "--no-open", "--port", String(port)]);
    const other = await home.run(["ui", "--no-open", "--port", String(freePort())]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain(`the UI already listens on port ${port}`);
    const bad = await home.run(["ui", "--no-open", "--port", "http"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--port http is not a port number");
    const unknown = await home.run(["ui", "--noopen"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("unknown flag --noopen");
  });
});
