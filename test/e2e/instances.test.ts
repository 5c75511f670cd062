/**
 * Instances end to end under QEMU: lifecycle, exec, logs, the idle policy
 * with a memory snapshot, and a daemon killed with SIGKILL. One daemon for
 * the file, with short idle defaults only where a test asks for them.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { TestHome } from "../helpers/aegis.ts";

const T = 180_000;
let home: TestHome;
const env = { AEGIS_ROUTER_PORT: "0" };

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"], { env });
}, T);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

async function state(name: string): Promise<string> {
  return JSON.parse((await home.ok(["instance", "info", name, "--json"])).stdout).state;
}

async function waitState(name: string, want: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await state(name)) === want) return;
    await Bun.sleep(250);
  }
  throw new Error(`instance ${name} did not reach ${want} (now ${await state(name)})`);
}

const counter = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.2; done"];

describe("instance lifecycle", () => {
  it("starts, lists, execs, logs, pauses, resumes on exec, stops with its disk kept, restarts and deletes", async () => {
    const started = await home.ok(["instance", "start", "--name", "life", "--pause-after", "0", "--", ...counter]);
    expect(started.stderr).toMatch(/^Instance life \(inst-[0-9a-f]+\) running\n$/);
    const list = (await home.ok(["instance", "list"])).stdout;
    expect(list).toMatch(/life\s+inst-[0-9a-f]+\s+running/);

    const exec = await home.run(["exec", "life", "--", "sh", "-c", "cat /tmp/count >/dev/null && echo persisted > /root/keep && echo out; echo err >&2; exit 5"]);
    expect([exec.stdout, exec.stderr, exec.code]).toEqual(["out\n", "err\n", 5]);
    await Bun.sleep(600);
    expect((await home.ok(["logs", "life", "--tail", "1"])).stdout).toMatch(/^tick \d+\n$/);

    expect((await home.ok(["instance", "pause", "life"])).stderr).toBe("Instance life paused\n");
    const before = Number((await home.ok(["exec", "life", "--", "cat", "/tmp/count"])).stdout);
    expect(await state("life")).toBe("running");
    await Bun.sleep(500);
    expect(Number((await home.ok(["exec", "life", "--", "cat", "/tmp/count"])).stdout)).toBeGreaterThan(before);

    expect((await home.ok(["instance", "stop", "life"])).stderr).toBe("Instance life stopped\n");
    await home.ok(["instance", "start", "--name", "life"]);
    expect((await home.ok(["exec", "life", "--", "cat", "/root/keep"])).stdout).toBe("persisted\n");

    const dup = await home.run(["instance", "start", "--name", "life", "--", "true"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('instance "life" already exists and is running');
    expect((await home.ok(["instance", "delete", "life"])).stderr).toBe('Instance "life" deleted\n');
    expect((await home.run(["instance", "info", "life"])).code).toBe(1);
  }, T);

  it("pauses when idle, stops with a memory snapshot, and wakes on exec with the process's memory intact", async () => {
    await home.ok(["instance", "start", "--name", "idler", "--pause-after", "2", "--stop-after", "2", "--", ...counter]);
    await waitState("idler", "paused", 30_000);
    await waitState("idler", "stopped", 30_000);
    const info = JSON.parse((await home.ok(["instance", "info", "idler", "--json"])).stdout);
    expect(info.has_snapshot).toBe(true);
    // The counter resumes from where it was (a cold boot would restart it at 1).
    const n = Number((await home.ok(["exec", "idler", "--", "cat", "/tmp/count"])).stdout);
    expect(n).toBeGreaterThan(5);
    expect(JSON.parse((await home.ok(["instance", "info", "idler", "--json"])).stdout).has_snapshot).toBe(false);
    await home.ok(["instance", "delete", "idler"]);
  }, T);

  it("keeps instances across a daemon killed with SIGKILL; they wake on demand", async () => {
    await home.ok(["instance", "start", "--name", "survivor", "--pause-after", "0", "--", ...counter]);
    const pid = Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8"));
    process.kill(pid, "SIGKILL");
    await Bun.sleep(200);
    await home.ok(["up"], { env });
    expect(await state("survivor")).toBe("stopped");
    const r = await home.ok(["exec", "survivor", "--", "echo", "back"]);
    expect(r.stdout).toBe("back\n");
    expect(await state("survivor")).toBe("running");
    await home.ok(["instance", "delete", "survivor"]);
  }, T);

  it("rejects bad instance requests without creating anything", async () => {
    for (const [args, message] of [
      [["instance", "start", "--expose", "99999", "--", "true"], 'invalid --expose value "99999"'],
      [["instance", "start", "--workspace", "../escape", "--", "true"], 'invalid workspace "../escape"'],
      [["instance", "start", "--kit", "nokit", "--", "true"], 'kit "nokit" is not installed'],
      [["instance", "start", "--pause-after", "soon", "--", "true"], 'invalid --pause-after value "soon"'],
      [["instance", "start"], "no command"],
      [["exec", "ghost", "--", "true"], 'instance "ghost" not found'],
    ] as [string[], string][]) {
      const r = await home.run(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    expect(JSON.parse((await home.ok(["instance", "list", "--json"])).stdout)).toEqual([]);
  }, T);
});
