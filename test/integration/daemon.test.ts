import { describe, expect, it } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";

describe("aegis up / down / status", () => {
  it("starts the daemon once, reports it, and stops it idempotently", async () => {
    await using home = new TestHome();
    const notRunning = await home.run(["status"]);
    expect(notRunning.stdout).toBe("aegisd: not running\n");
    expect(notRunning.code).toBe(1);

    const up = await home.ok(["up"]);
    const pid = Number(/aegisd started \(pid (\d+)\)/.exec(up.stderr)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(readFileSync(join(home.dir, "data", "aegisd.pid"), "utf8").trim()).toBe(String(pid));
    expect(statSync(home.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(home.dir, "aegisd.sock")).mode & 0o777).toBe(0o600);

    const again = await home.ok(["up"]);
    expect(again.stderr).toBe(`aegisd is already running (pid ${pid})\n`);

    const status = await home.ok(["status"]);
    expect(status.stdout).toMatch(/^aegisd: running\nbackend: (qemu|libkrun|none)\n$/);
    const json = JSON.parse((await home.ok(["status", "--json"])).stdout);
    expect(json.status).toBe("running");
    expect(Object.keys(json.capabilities).sort()).toEqual(["boot_from_disk_layers", "memory_snapshots", "pause_resume"]);

    const down = await home.ok(["down"]);
    expect(down.stderr).toBe(`aegisd stopping (pid ${pid})\naegisd stopped\n`);
    expect(existsSync(join(home.dir, "aegisd.sock"))).toBe(false);
    expect(existsSync(join(home.dir, "data", "aegisd.pid"))).toBe(false);
    expect((await home.ok(["down"])).stderr).toBe("aegisd is not running\n");
  });

  it("recovers from a stale pid file and a stale socket left by a killed daemon", async () => {
    await using home = new TestHome();
    const first = await home.ok(["up"]);
    const pid = Number(/pid (\d+)/.exec(first.stderr)?.[1]);
    process.kill(pid, "SIGKILL");
    while (existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z")) await Bun.sleep(10);
    expect(existsSync(join(home.dir, "aegisd.sock"))).toBe(true);
    writeFileSync(join(home.dir, "data", "aegisd.pid"), "999999\n");
    const up = await home.ok(["up"]);
    expect(up.stderr).toMatch(/^aegisd started \(pid \d+\)\n$/);
    expect((await home.ok(["status"])).stdout).toContain("aegisd: running");
  });

  it("tells the user to run 'aegis up' when the daemon is not running", async () => {
    await using home = new TestHome();
    const r = await home.run(["secret", "list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("aegisd is not running. Run 'aegis up' first.\n");
  });

  it("prints the doctor report with backend and capabilities when running", async () => {
    await using home = new TestHome();
    const idle = await home.ok(["doctor"]);
    expect(idle.stdout).toContain("Aegis Doctor\n============\n");
    expect(idle.stdout).toContain("aegisd:    not running");
    await home.ok(["up"]);
    const doc = (await home.ok(["doctor"])).stdout;
    for (const line of ["QEMU:", "libkrun:", "e2fsprogs:", "aegisd:    running", "Backend:", "  Pause/Resume:", "  Memory Snapshots:", "  Boot from disk layers:", "Installed kits: 0"]) {
      expect(doc).toContain(line);
    }
    const json = JSON.parse((await home.ok(["doctor", "--json"])).stdout);
    expect(json.daemon.status).toBe("running");
    expect(json.checks.map((c: { name: string }) => c.name)).toContain("QEMU");
  });
});
