/**
 * Listeners never share a port (issue 10, item 5): a second aegisd with
 * another AEGIS_HOME on the first one's router port refuses to start, names
 * the port and the first daemon's AEGIS_HOME, and the first keeps answering
 * every request; an `--expose` forward onto a port a process holds with
 * SO_REUSEPORT is refused instead of silently sharing it.
 */
import { describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/daemon/instances/ports.ts";
import { Router } from "../../src/daemon/router/router.ts";
import { TestHome } from "../helpers/aegis.ts";
import { TestHooks } from "../unit/router/_fixtures.ts";

describe("exclusive listeners", () => {
  it("refuses a second daemon on the first one's router port, naming the port and its AEGIS_HOME", async () => {
    const claims = mkdtempSync(join(tmpdir(), "ag-claims-"));
    await using first = new TestHome();
    await using second = new TestHome();
    try {
      const port = await freePort();
      const env = { AEGIS_ROUTER_PORT: String(port), AEGIS_PORT_CLAIMS_DIR: claims };
      await first.ok(["up"], { env });
      const refused = await second.run(["up"], { env });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`cannot listen on 127.0.0.1:${port} for the HTTP router`);
      expect(refused.stderr).toContain(`in use by another aegisd`);
      expect(refused.stderr).toContain(`AEGIS_HOME=${first.dir}`);
      expect((await second.run(["status"])).stdout).toBe("aegisd: not running\n");
      // Every request still reaches the first daemon's router (its "no such instance" envelope).
      const results = await Promise.all(Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${port}/`, { headers: { host: "nothing.localhost" } }).then(async (r) => ({ status: r.status, body: await r.text() }))));
      for (const r of results) {
        expect(r.status).toBe(404);
        expect(r.body).toContain('"error"');
      }
      const listeners = Bun.spawnSync(["ss", "-Hltn", `sport = :${port}`]).stdout.toString().trim().split("\n").filter(Boolean);
      expect(listeners).toHaveLength(1);
    } finally {
      rmSync(claims, { recursive: true, force: true });
    }
  });

  it("refuses an --expose forward on a port another process holds with SO_REUSEPORT", async () => {
    const port = await freePort();
    const other = Bun.serve({ hostname: "127.0.0.1", port, reusePort: true, fetch: () => new Response("other") });
    const router = new Router(new TestHooks(), { httpPort: 0 });
    try {
      await router.start();
      await expect(router.addTcpForward(port, { instanceId: "inst-1", guestPort: 80 })).rejects.toThrow(`cannot listen on 127.0.0.1:${port} to forward to guest port 80 of instance "inst-1"`);
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("other");
    } finally {
      await router.stop();
      other.stop(true);
    }
  });
});
