/**
 * The floor every boot benchmark compares against: the same kernel and
 * initramfs content booting a /init that powers off at once, timed from
 * QEMU spawn to QEMU exit. Shared by bench/boot.ts and bench/lifecycle.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { staticBusybox } from "../src/vmm/assets/busybox.ts";
import { writeCpio } from "../src/vmm/assets/cpio.ts";
import type { GuestAssets } from "../src/vmm/assets/index.ts";
import { initramfsEntries } from "../src/vmm/assets/initramfs.ts";
import { detectAccel, tscKhzFromCpuinfo } from "../src/vmm/accel.ts";
import { buildQemuArgs } from "../src/vmm/qemu-args.ts";
import { parseBaselineUptime } from "./_phases.ts";

/** The baseline initramfs: identical content, but /init reboots (= QEMU exits) immediately. */
export async function baselineInitrd(work: string): Promise<string> {
  const entries = await initramfsEntries({ busybox: await staticBusybox(), libraries: [], baseModules: [], workspaceModules: [], harness: "/bin/true", release: "baseline" });
  // It reports its uptime (bench/_phases.ts) so the kernel part of the floor is known too.
  const init = new TextEncoder().encode(
    '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\nread -r t _ < /proc/uptime\necho "aegis-baseline: uptime $t s" >&2\n/bin/busybox reboot -f\n',
  );
  const patched = entries.map((e) => (e.type === "file" && e.path === "init" ? { ...e, data: init } : e));
  mkdirSync(work, { recursive: true });
  const path = join(work, "baseline.cpio.gz");
  writeFileSync(path, Bun.gzipSync(writeCpio(patched), { level: 6 }));
  return path;
}

/** One baseline boot: ms from spawn to exit, and the guest uptime (ms) when its /init ran, when printed. */
export async function baselineBootPhases(assets: GuestAssets, initrd: string, runDir: string): Promise<{ ms: number; initUptimeMs?: number }> {
  mkdirSync(runDir, { recursive: true });
  const accel = detectAccel();
  const args = buildQemuArgs({
    arch: "x86_64",
    accel: accel.name,
    tscKhz: tscKhzFromCpuinfo(readFileSync("/proc/cpuinfo", "utf8")),
    memoryMb: 512,
    vcpus: 1,
    kernel: assets.kernel,
    initrd,
    toolsDisk: assets.toolsDisk,
    rootfs: assets.baseRootfs,
    ports: [],
    hostname: "baseline",
    serialLog: join(runDir, "console.log"),
    controlSocket: join(runDir, "unused.sock"),
    qmpSocket: join(runDir, "qmp.sock"),
  });
  // The control chardev must have a listener; a plain unix server that accepts and ignores is enough.
  const server = Bun.listen<undefined>({ unix: join(runDir, "unused.sock"), socket: { data: () => {} } });
  const t0 = performance.now();
  const proc = Bun.spawn([Bun.which("qemu-system-x86_64")!, ...args], { stdin: "ignore", stdout: "ignore", stderr: "ignore", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  const code = await proc.exited;
  const ms = performance.now() - t0;
  server.stop(true);
  if (code !== 0) throw new Error(`baseline QEMU exited ${code}`);
  return { ms, initUptimeMs: parseBaselineUptime(readFileSync(join(runDir, "console.log"), "utf8")) };
}

/** One baseline boot (ms from spawn to exit). */
export async function baselineBoot(assets: GuestAssets, initrd: string, runDir: string): Promise<number> {
  return (await baselineBootPhases(assets, initrd, runDir)).ms;
}

