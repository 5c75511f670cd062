import { describe, expect, it } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";

async function daemons(home: TestHome) {
  return JSON.parse((await home.ok(["status", "--json"])).stdout).daemons as { name: string; state: string; pid: number | null; restarts: number }[];
}

describe("kit daemons", () => {
  it("start with aegis up once their config exists, restart after a crash, stop with aegis down, and honour --no-daemons", async () => {
    await using home = new TestHome();
    const manifest = join(home.dir, "k.yaml");
    writeFileSync(
      manifest,
      "name: testkit\nversion: '1'\nimage: alpine\ndaemons:\n  - name: test-sleeper\n    command: [sh, -c, 'echo sleeper up; exec sleep 1000']\n    requires_config: sleeper.json\n",
    );
    await home.ok(["up"]);
    await home.ok(["kit", "install", manifest]);
    await home.ok(["down"]);
    const noConfig = await home.ok(["up"]);
    expect(noConfig.stderr).toContain(`test-sleeper: no config (create ${home.dir}/sleeper.json to enable)`);
    await home.ok(["down"]);

    writeFileSync(join(home.dir, "sleeper.json"), "{}");
    const started = await home.ok(["up"]);
    expect(started.stderr).toContain("test-sleeper: started (testkit kit)");
    const [first] = await daemons(home);
    expect(first).toMatchObject({ name: "test-sleeper", state: "running", restarts: 0 });
    process.kill(first!.pid!, "SIGKILL");
    const deadline = Date.now() + 10_000;
    let now = first!;
    while (Date.now() < deadline) {
      now = (await daemons(home))[0]!;
      if (now!.state === "running" && now!.pid !== first!.pid) break;
      await Bun.sleep(100);
    }
    expect(now).toMatchObject({ state: "running", restarts: 1 });
    expect((await home.ok(["status"])).stdout).toContain("test-sleeper: running");
    await home.ok(["down"]);
    expect(existsSync(`/proc/${now!.pid}`)).toBe(false);

    const skipped = await home.ok(["up", "--no-daemons"]);
    expect(skipped.stderr).toContain("test-sleeper: not started (--no-daemons)");
    expect((await daemons(home))[0]!.state).toBe("disabled");
  }, 60_000);
});
