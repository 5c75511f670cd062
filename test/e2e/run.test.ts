/**
 * `aegis run` end to end: the real binary, a real daemon, real VMs under QEMU
 * (TCG on our machines). One daemon serves the whole file; every test boots
 * its own task VMs, so keep this file's boot count small.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { aegisBin, TestHome } from "../helpers/aegis.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

const BOOT_TIMEOUT = 120_000;
let home: TestHome;

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
}, BOOT_TIMEOUT);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Wait until some task of this home is running (its command has been started in the guest). */
async function waitForRunningTask(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const res = await fetch("http://aegis/v1/tasks?state=running", { unix: `${home.dir}/aegisd.sock` });
    const body = (await res.json()) as { tasks: { state: string }[] };
    if (body.tasks.length > 0) return;
    await Bun.sleep(100);
  }
  throw new Error("no task reached the running state");
}

/** Start `aegis run` without waiting for it. */
function spawnRun(args: string[]) {
  const proc = Bun.spawn([aegisBin(), "run", ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home.dir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { proc, output };
}

describe("aegis run", () => {
  it("runs echo in a microVM", async () => {
    const r = await home.run(["run", "--", "echo", "hello from aegis"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from aegis\n");
    expect(r.code).toBe(0);
  }, BOOT_TIMEOUT);

  it("starts each task from the template with its own hostname, a clean root and the MCP bridge socket", async () => {
    // The template assembles a task's root (tmpfs upper layer) and listens on the bridge socket before its
    // snapshot (vmm/templates.ts): every clone must still get only its own name and none of another's files.
    const probe = "hostname; grep -c \"127.0.1.1 $(hostname)$\" /etc/hosts; test -S /run/aegis/mcp.sock && echo socket; cat /etc/left 2>/dev/null || echo clean; echo x > /etc/left";
    const first = await home.run(["run", "--", "sh", "-c", probe]);
    const second = await home.run(["run", "--", "sh", "-c", probe]);
    for (const r of [first, second]) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^task-[0-9a-z]+\n1\nsocket\nclean\n$/);
    }
    expect(first.stdout.split("\n")[0]).not.toBe(second.stdout.split("\n")[0]);
  }, BOOT_TIMEOUT);

  it("runs three tasks at once with exit codes, signals, separate streams and exact arguments", async () => {
    const [streams, signalled, args] = await Promise.all([
      home.run(["run", "--", "sh", "-c", "echo out; echo err 1>&2; exit 3"]),
      home.run(["run", "--", "sh", "-c", "kill -9 $$"]),
      home.run(["run", "--", "printf", "%s|", "a b", "c'd", 'e"f', "--help", ""]),
    ]);
    expect([streams.stdout, streams.stderr, streams.code]).toEqual(["out\n", "err\n", 3]);
    expect(signalled.code).toBe(137);
    expect(args.stdout).toBe(`a b|c'd|e"f|--help||`);
    expect(args.code).toBe(0);
  }, BOOT_TIMEOUT);

  it("keeps a followed log stream open through 12 quiet seconds (longer than Bun's default idle timeout)", async () => {
    const r = await home.run(["run", "--", "sh", "-c", "sleep 12; echo after-quiet"]);
    expect(r.stdout).toBe("after-quiet\n");
    expect(r.code).toBe(0);
  }, BOOT_TIMEOUT);

  it("delivers 20,000 lines in order and a 10 MB binary stream intact", async () => {
    const lines = await home.run(["run", "--", "seq", "1", "20000"]);
    expect(lines.code).toBe(0);
    expect(lines.stdout).toBe(`${Array.from({ length: 20000 }, (_, i) => i + 1).join("\n")}\n`);

    const proc = Bun.spawn([aegisBin(), "run", "--", "sh", "-c", "head -c 10485760 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob"], {
      env: { PATH: process.env.PATH ?? "", AEGIS_HOME: home.dir },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [bytes, stderr, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(0);
    expect(bytes.byteLength).toBe(10 * 1024 * 1024);
    expect(stderr.split(" ")[0]).toBe(createHash("sha256").update(new Uint8Array(bytes)).digest("hex"));
  }, BOOT_TIMEOUT);

  it("isolates the guest: own kernel, no host files, only the named secrets", async () => {
    const marker = `/tmp/aegis-host-marker-${process.pid}`;
    writeFileSync(marker, "host only");
    try {
      await home.ok(["secret", "set", "NAMED_SECRET", "named-value"]);
      await home.ok(["secret", "set", "OTHER_SECRET", "other-value"]);
      const r = await home.run([
        "run", "--secret", "NAMED_SECRET", "--env", "GREETING=hi there", "--",
        "sh", "-c", `uname -r; test -e ${marker} && echo visible || echo hidden; echo "$NAMED_SECRET|\${OTHER_SECRET:-unset}|$GREETING"`,
      ]);
      expect(r.code).toBe(0);
      const [kernel, visibility, env] = r.stdout.trimEnd().split("\n");
      expect(kernel).toContain("cloud");
      expect(kernel).not.toBe(readFileSync("/proc/sys/kernel/osrelease", "utf8").trim());
      expect(visibility).toBe("hidden");
      expect(env).toBe("named-value|unset|hi there");
      const missing = await home.run(["run", "--secret", "NOT_SET_ANYWHERE", "--", "true"]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("secret NOT_SET_ANYWHERE not found");
    } finally {
      rmSync(marker, { force: true });
    }
  }, BOOT_TIMEOUT);

  it("keeps secrets out of QEMU's argv, and Ctrl+C cancels the task leaving no QEMU behind", async () => {
    await home.ok(["secret", "set", "ARGV_CANARY", "canary-value-9137"]);
    const { proc, output } = spawnRun(["--secret", "ARGV_CANARY", "--", "sleep", "600"]);
    const [pid] = await waitFor("a QEMU process", () => {
      const p = qemuPids(home.dir);
      return p.length > 0 ? p : null;
    });
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain("canary-value-9137");
    await waitForRunningTask();
    proc.kill("SIGINT");
    const [, stderr, code] = await output;
    expect(code).toBe(130);
    expect(stderr).toContain("cancelling");
    expect(qemuPids(home.dir)).toEqual([]);
  }, BOOT_TIMEOUT);

  it("fails the task cleanly when the guest kernel panics or QEMU is killed", async () => {
    const panic = await home.run(["run", "--", "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 30"]);
    expect(panic.code).toBe(1);
    expect(panic.stderr).toContain("VM exited");
    expect(panic.stderr).toMatch(/Kernel panic|sysrq/i);

    const { output } = spawnRun(["--", "sleep", "600"]);
    const [pid] = await waitFor("a QEMU process", () => {
      const p = qemuPids(home.dir);
      return p.length > 0 ? p : null;
    });
    await waitForRunningTask();
    process.kill(pid!, "SIGKILL");
    const [, stderr, code] = await output;
    expect(code).toBe(1);
    expect(stderr).toContain("VM exited");
  }, BOOT_TIMEOUT);
});
