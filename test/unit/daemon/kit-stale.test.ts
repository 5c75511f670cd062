/**
 * Finding a killed aegisd's kit daemons (daemon/kits/stale.ts): by the
 * environment marker of real processes, only for this AEGIS_HOME, and a
 * damaged pid file read as empty rather than failing the start.
 */
import { afterEach, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childEnv } from "../../../src/control/daemon-process.ts";
import { KIT_DAEMON_ENV, kitDaemonOf, readPidFile, running, scanKitDaemons } from "../../../src/daemon/kits/stale.ts";

const procs: ReturnType<typeof Bun.spawn>[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
});

const spawnWith = (env: Record<string, string>) => {
  const p = Bun.spawn(["sleep", "30"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
  procs.push(p);
  return p;
};

it("reads the marker and the home from an environ block", () => {
  expect(kitDaemonOf(`PATH=/bin\0AEGIS_HOME=/h/a\0${KIT_DAEMON_ENV}=aegis-gateway\0`, "/h/a")).toBe("aegis-gateway");
  expect(kitDaemonOf(`AEGIS_HOME=/h/a/\0${KIT_DAEMON_ENV}=aegis-gateway`, "/h/a")).toBe("aegis-gateway");
  expect(kitDaemonOf(`AEGIS_HOME=/h/b\0${KIT_DAEMON_ENV}=aegis-gateway`, "/h/a")).toBeNull();
  expect(kitDaemonOf(`${KIT_DAEMON_ENV}=aegis-gateway`, "/h/a")).toBeNull();
  expect(kitDaemonOf("AEGIS_HOME=/h/a\0PATH=/bin", "/h/a")).toBeNull();
  expect(kitDaemonOf(`AEGIS_HOME=/h/a\0${KIT_DAEMON_ENV}=`, "/h/a")).toBeNull();
});

it("finds the live processes marked for this home, and no others", async () => {
  const home = mkdtempSync(join(tmpdir(), "aegis-kit-stale-"));
  try {
    const ours = spawnWith({ AEGIS_HOME: home, [KIT_DAEMON_ENV]: "aegis-gateway" });
    const otherHome = spawnWith({ AEGIS_HOME: `${home}-other`, [KIT_DAEMON_ENV]: "aegis-gateway" });
    const unmarked = spawnWith({ AEGIS_HOME: home });
    await Bun.sleep(50); // exec done: environ is the new program's
    const found = scanKitDaemons(home);
    expect(found).toEqual([{ name: "aegis-gateway", pid: ours.pid }]);
    expect(found.map((f) => f.pid)).not.toContain(otherHome.pid);
    expect(found.map((f) => f.pid)).not.toContain(unmarked.pid);
    ours.kill("SIGKILL");
    await ours.exited;
    expect(running(ours.pid)).toBe(false);
    expect(scanKitDaemons(home)).toEqual([]);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

it("never passes the marker on to what aegis itself starts", () => {
  process.env[KIT_DAEMON_ENV] = "aegis-gateway";
  try {
    expect(childEnv()[KIT_DAEMON_ENV]).toBeUndefined();
    expect(childEnv({ [KIT_DAEMON_ENV]: "x" })[KIT_DAEMON_ENV]).toBe("x");
  } finally {
    delete process.env[KIT_DAEMON_ENV];
  }
});

it("reads a missing or torn pid file as empty", () => {
  const dir = mkdtempSync(join(tmpdir(), "aegis-kit-pids-"));
  try {
    const file = join(dir, "kit-daemons.json");
    expect(readPidFile(file)).toEqual({});
    writeFileSync(file, '{"aegis-gate');
    expect(readPidFile(file)).toEqual({});
    writeFileSync(file, '{"aegis-gateway": 42, "bad": "x", "neg": -1}\n');
    expect(readPidFile(file)).toEqual({ "aegis-gateway": 42 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
