/**
 * Regression: `aegis down` right after `aegis up` (as bench/api.ts does),
 * while aegisd is still building the default template, left the template's
 * QEMU running forever, orphaned (the daemon's shutdown only killed VMs it
 * had handed out), its AEGIS_HOME deleted under it.
 */
import { expect, it } from "bun:test";
import { TestHome } from "../helpers/aegis.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

it("aegis down while the default template is being built leaves no QEMU behind", async () => {
  await using home = new TestHome();
  // AEGIS_WARM=1: this daemon builds the default template at start-up, as a user's does.
  await home.ok(["up"], { env: { AEGIS_WARM: "1" } });
  const deadline = Date.now() + 240_000;
  while (qemuPids(home.dir).length === 0) {
    if (Date.now() > deadline) throw new Error("the template QEMU never started");
    await Bun.sleep(50);
  }
  const down = await home.run(["down"]);
  expect(down.code).toBe(0);
  // Group kills are synchronous; give the kernel a moment to reap.
  const gone = Date.now() + 5000;
  while (qemuPids(home.dir).length > 0 && Date.now() < gone) await Bun.sleep(50);
  expect(qemuPids(home.dir)).toEqual([]);
}, 300_000);
