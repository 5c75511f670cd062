/**
 * Live restore of libkrun VMs (LibkrunBackend.adopt), checked against the
 * ABI-level stand-in for libkrun (libkrun-stub.ts, the same stub library
 * libkrun-abi.test.ts uses). libkrun itself is NOT run here (it cannot be
 * installed on these machines) and no VM boots: the stub's
 * `krun_start_enter` plays a guest on the vsock-mapped Unix socket that
 * emits one seq'd `output` every 50 ms, keeps them for `resume`, and
 * connects again when the host end goes away, as the harness does under
 * vsock (guest/harness/port.ts).
 *
 * What is real: the `aegis __vmm` worker process, its spawn (detached, own
 * session), the registry rows (VmsTable in SQLite), the VmLauncher and
 * backend code of both daemons, and a SIGKILL of the first daemon's process.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statePaths } from "../../src/paths.ts";
import { openDatabase } from "../../src/daemon/db.ts";
import { VmsTable } from "../../src/daemon/registry/vms.ts";
import { VmLauncher } from "../../src/daemon/vms.ts";
import { LibkrunBackend } from "../../src/vmm/libkrun.ts";
import { processStartTime, sameProcess } from "../../src/vmm/vm-process.ts";
import { killGroup } from "../../src/vmm/virtiofsd.ts";
import { compileStub } from "./libkrun-stub.ts";

const repo = join(import.meta.dir, "..", "..");
let dir = "";
let stub = "";
let guest = { rootDir: "", baseRootfs: "" };
/** Worker and stand-in pids to kill if a test fails half-way. */
const leftovers = new Set<number>();

/** /proc/PID/stat state, ppid, pgrp and session. */
function stat(pid: number): { pgrp: number; session: number } {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pgrp: Number(f[2]), session: Number(f[3]) };
}

function seqsIn(file: string): number[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number) : [];
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/** Read `stream` until a line matches `re`; returns the match. */
async function readLine(stream: ReadableStream<Uint8Array>, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before a line matching ${re}: ${text}`);
      text += dec.decode(value, { stream: true });
      const m = text.match(re);
      if (m) return m;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "krun-adopt-"));
  stub = join(dir, "libkrun-stub.so");
  await compileStub(dir, stub);
  writeFileSync(join(dir, "behaviour"), "start chatty\n");
  guest = { rootDir: join(dir, "krun-root"), baseRootfs: join(dir, "base.ext4") };
  mkdirSync(guest.rootDir);
  writeFileSync(guest.baseRootfs, "");
});

afterAll(() => {
  for (const pid of leftovers) killGroup(pid);
  rmSync(dir, { recursive: true, force: true });
});

describe("libkrun live restore against the ABI-level stand-in (not libkrun itself)", () => {
  it("keeps a worker running in its own session when its daemon is SIGKILLed, and a new backend adopts it: the channel works and every output seq arrives exactly once, in order", async () => {
    const home = join(dir, "home-a");
    const seqLog = join(dir, "seqs-first-daemon");
    const first = Bun.spawn([process.execPath, join(repo, "test", "fixtures", "libkrun-first-daemon.ts"), stub, guest.rootDir, guest.baseRootfs, "vm-a", seqLog], {
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", AEGIS_HOME: home },
    });
    leftovers.add(first.pid);
    const firstErr = new Response(first.stderr).text();
    const pid = Number((await readLine(first.stdout, /booted (\d+)\n/, 30_000))[1]);
    leftovers.add(pid);

    // Recorded durably (the registry row) before the VM was used, and marked ready once handed out.
    const paths = statePaths(home);
    const table = new VmsTable(openDatabase(paths.db));
    const row = table.all().find((r) => r.rec.id === "vm-a");
    expect(row).toMatchObject({ rec: { id: "vm-a", pid, startTime: processStartTime(pid)!, template: false }, ready: true, spec: { runDir: join(paths.instances, "vm-a") } });
    // Its own session and process group, not the daemon's.
    expect(stat(pid)).toEqual({ pgrp: pid, session: pid });
    expect(stat(first.pid).session).not.toBe(pid);

    await until("the first daemon to handle 5 outputs", () => seqsIn(seqLog).length >= 5, 15_000);
    first.kill("SIGKILL");
    await first.exited;
    await firstErr;
    leftovers.delete(first.pid);
    // The guest goes on producing while no daemon listens (~8 outputs in 400 ms): the adoption must replay them.
    await Bun.sleep(400);
    expect(sameProcess(pid, row!.rec.startTime)).toBe(true);

    const logged: Record<string, unknown>[] = [];
    const backend = new LibkrunBackend({ library: stub, guest, log: (_msg, fields) => logged.push(fields ?? {}) });
    const noop = () => {};
    // Forged records are refused before anything listens on the VM's socket.
    const wrongStart = { ...row!.rec, startTime: String(BigInt(row!.rec.startTime) + 1n) };
    await expect(backend.adopt(wrongStart, row!.spec, noop)).rejects.toThrow(/libkrun worker \(pid \d+, start time \d+\) is no longer running/);
    const wrongPid = { ...row!.rec, pid: process.pid, startTime: processStartTime(process.pid)! };
    await expect(backend.adopt(wrongPid, row!.spec, noop)).rejects.toThrow(`pid ${process.pid} is not its libkrun worker (its command line does not name --run-dir ${row!.spec.runDir})`);
    await expect(backend.adopt({ ...row!.rec, template: true }, row!.spec, noop)).rejects.toThrow(/template build/);
    expect(sameProcess(pid, row!.rec.startTime)).toBe(true);

    const launcher = new VmLauncher(paths, backend, "test", table);
    const got: number[] = [];
    const vm = await launcher.adopt(launcher.recorded("vm-a")!, (v) => v.channel.onNotification("output", (p) => got.push(p.seq!)));
    try {
      expect(vm.pid).toBe(pid);
      expect(await vm.channel.call("ping", undefined, { timeoutMs: 5000 })).toEqual({ uptime_ms: 5 });
      const handledBefore = seqsIn(seqLog);
      await until("5 live outputs after the adoption", () => got.length >= (logged[0]?.replayed as number) + 5, 15_000);
      expect(logged[0]).toMatchObject({ vm: "vm-a", backend: "libkrun", pid });
      expect(logged[0]!.replayed as number).toBeGreaterThanOrEqual(1);
      const all = [...handledBefore, ...got];
      expect(all).toEqual(all.map((_, i) => i + 1));
      await vm.stop(5000);
      expect(await vm.exited).toBe(-1); // adopted: not our child, so no wait status
      expect(sameProcess(pid, row!.rec.startTime)).toBe(false);
      await until("the registry row to go", () => table.all().every((r) => r.rec.id !== "vm-a"), 5000);
    } finally {
      vm.kill();
      leftovers.delete(pid);
    }
  }, 90_000);

  it("refuses a recorded worker that never reconnects and the daemon kills it, but leaves alone a process whose start time does not match", async () => {
    const home = join(dir, "home-b");
    const paths = statePaths(home);
    mkdirSync(paths.data, { recursive: true });
    const table = new VmsTable(openDatabase(paths.db));
    const record = (id: string, forgeStart: boolean) => {
      const runDir = join(paths.instances, id);
      mkdirSync(runDir, { recursive: true });
      // Looks like a worker of `runDir` (its argv names it) but is no VM: it never connects.
      const proc = Bun.spawn(["bash", "-c", "sleep 60; :", "__vmm", "--run-dir", runDir], { stdin: "ignore", stdout: "ignore", stderr: "ignore", detached: true });
      leftovers.add(proc.pid);
      // Right after the fork /proc shows the parent's argv until the exec; adopt reads it.
      for (let i = 0; i < 200 && !readFileSync(`/proc/${proc.pid}/cmdline`, "utf8").startsWith("bash"); i++) Bun.sleepSync(10);
      const startTime = processStartTime(proc.pid)!;
      table.spawned({ id, pid: proc.pid, startTime: forgeStart ? String(BigInt(startTime) + 1n) : startTime, template: false }, { id, runDir, memoryMb: 256, vcpus: 1, ports: [], hostname: id });
      table.ready(id, proc.pid);
      return { proc, startTime, row: table.all().find((r) => r.rec.id === id)! };
    };
    const launcher = new VmLauncher(paths, new LibkrunBackend({ library: stub, guest, adoptTimeoutMs: 1000 }), "test", table);

    const silent = record("vm-b", false);
    await expect(launcher.adopt(silent.row, () => {})).rejects.toThrow(/vm-b: its libkrun worker \(pid \d+\) did not take the control channel back: .*did not connect/);
    expect(launcher.killRecorded(silent.row)).toBe(true);
    await silent.proc.exited;
    expect(sameProcess(silent.proc.pid, silent.startTime)).toBe(false);

    const forged = record("vm-c", true);
    try {
      await expect(launcher.adopt(forged.row, () => {})).rejects.toThrow(/no longer running/);
      expect(launcher.killRecorded(forged.row)).toBe(false);
      expect(sameProcess(forged.proc.pid, forged.startTime)).toBe(true);
    } finally {
      killGroup(forged.proc.pid);
      await forged.proc.exited;
    }
    expect(table.all()).toEqual([]);
  }, 30_000);
});
