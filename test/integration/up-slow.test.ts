/**
 * `aegis up` on a slow start (a loaded machine): the spec's 2 s wait for the
 * pid file is where it says on stderr that aegisd is still starting; it then
 * waits on, up to 15 s in all (control/daemon-process.ts START_MAX_WAIT_MS),
 * and only then fails, stopping the daemon that did not come up. The slow
 * start is made with AEGIS_TEST_START_DELAY_MS, a test-only knob that delays
 * the real daemon's start-up (daemon/daemon.ts).
 */
import { describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { TestHome } from "../helpers/aegis.ts";

describe("aegis up on a slow start", () => {
  it("says once that aegisd is still starting after 2 s, then waits on and succeeds", async () => {
    await using home = new TestHome();
    const t0 = Date.now();
    const up = await home.ok(["up"], { env: { AEGIS_TEST_START_DELAY_MS: "4000" } });
    const ms = Date.now() - t0;
    expect(up.stderr).toMatch(/^aegis: aegisd is still starting\.\.\.\naegisd started \(pid \d+\)\n$/);
    expect(ms).toBeGreaterThanOrEqual(4000);
    expect((await home.ok(["status"])).stdout).toContain("aegisd: running");
  }, 40_000);

  it("fails after 15 s with a clear message and stops the daemon that did not come up", async () => {
    await using home = new TestHome();
    const t0 = Date.now();
    const up = await home.run(["up"], { env: { AEGIS_TEST_START_DELAY_MS: "30000" } });
    const ms = Date.now() - t0;
    expect(up.code).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(15_000);
    expect(ms).toBeLessThan(25_000);
    expect(up.stderr).toContain("aegis: aegisd is still starting...\n");
    expect(up.stderr).toMatch(/aegisd \(pid \d+\) did not finish starting within 15 s \(no .*aegisd\.pid\), so it was stopped \(SIGTERM: VMs keep running\)/);
    expect(up.stderr).toContain("hint: the machine may be overloaded");
    const pid = Number(/aegisd \(pid (\d+)\)/.exec(up.stderr)?.[1]);
    const deadline = Date.now() + 5000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await Bun.sleep(50);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  }, 60_000);
});
