import { describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCmdline } from "../../../../guest/harness/config.ts";
import { chrootArgv, DEFAULT_PATH, processEnv, signalNumber } from "../../../../guest/harness/processes.ts";
import { parseStat } from "../../../../guest/harness/reaper.ts";
import { baseMountPlan, instanceMountPlan, mountPlan, parseMounts, ROOT, shutdownScript, templateMountCount, unmountPlan } from "../../../../guest/harness/setup.ts";
import { initScript } from "../../../../src/vmm/assets/init-script.ts";
import { modulesDep } from "../../../../src/vmm/assets/initramfs.ts";

const cfg = { hostname: "h", workspace: false, rootDisk: "/dev/vdb", rootVirtiofs: false, net: true, defer: false };

describe("harness boot config", () => {
  it("parses the kernel command line", () => {
    const m = parseCmdline("console=ttyS0 quiet aegis.hostname=box aegis.workspace=1\n");
    expect(m.get("aegis.hostname")).toBe("box");
    expect(m.get("quiet")).toBe("");
    expect(m.get("aegis.workspace")).toBe("1");
  });

  it("mounts the rootfs read-only under an overlay with a tmpfs upper, then proc/sys/dev/tmp/run inside", () => {
    const plan = mountPlan(cfg, new Set(["/", "/proc", "/sys", "/dev"]));
    expect(plan.map((s) => s.target)).toEqual([
      "/tmp", "/run", "/mnt/lower", "/mnt/rw", ROOT,
      `${ROOT}/proc`, `${ROOT}/sys`, `${ROOT}/dev`, `${ROOT}/dev/pts`, `${ROOT}/dev/shm`, `${ROOT}/tmp`, `${ROOT}/run`,
    ]);
    expect(plan[2]).toMatchObject({ source: "/dev/vdb", fstype: "ext4", flags: 1 });
    expect(plan[3]).toMatchObject({ fstype: "tmpfs" });
    expect(plan[4]!.data).toBe("lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work");
  });

  it("uses the aegis-overlay disk as the upper layer and mounts the workspace when present", () => {
    const plan = mountPlan({ ...cfg, overlayDisk: "/dev/vdc", workspace: true }, new Set(["/tmp", "/run"]));
    expect(plan.find((s) => s.target === "/mnt/rw")).toMatchObject({ source: "/dev/vdc", fstype: "ext4", data: "noinit_itable" });
    expect(plan.at(-1)).toMatchObject({ source: "workspace", fstype: "virtiofs", target: `${ROOT}/workspace` });
  });

  it("splits into a machine-wide part and a per-instance part for deferred (template) setup", () => {
    const mounted = new Set(["/proc"]);
    expect([...baseMountPlan(mounted), ...instanceMountPlan(cfg)]).toEqual(mountPlan(cfg, mounted));
    expect(baseMountPlan(mounted).map((s) => s.target)).toEqual(["/tmp", "/run"]);
    expect(instanceMountPlan(cfg)[0]).toMatchObject({ target: "/mnt/lower" });
  });

  it("lets a template mount only what names no instance: the whole root over tmpfs, else the image alone", () => {
    // A task (no overlay disk): the assembled root is the same in every clone.
    expect(templateMountCount(cfg)).toBe(instanceMountPlan(cfg).length);
    // An instance: its own overlay disk and everything mounted over it wait for its setup.
    const withDisk = { ...cfg, overlayDisk: "/dev/vdc" };
    expect(instanceMountPlan(withDisk).slice(0, templateMountCount(withDisk)).map((s) => s.target)).toEqual(["/mnt/lower"]);
    // A workspace or a host-directory rootfs (virtiofs, never templated) is never mounted early.
    const ws = { ...cfg, workspace: true };
    expect(instanceMountPlan(ws).slice(0, templateMountCount(ws)).some((s) => s.fstype === "virtiofs")).toBe(false);
    expect(templateMountCount({ ...cfg, rootVirtiofs: true })).toBe(0);
  });

  it("mounts the virtiofs share aegis-root read-only as the lower layer of a host-directory rootfs", () => {
    const plan = instanceMountPlan({ ...cfg, rootVirtiofs: true });
    expect(plan[0]).toMatchObject({ source: "aegis-root", target: "/mnt/lower", fstype: "virtiofs", flags: 1 });
    expect(plan.map((s) => s.target)).toEqual(instanceMountPlan(cfg).map((s) => s.target));
    expect(parseCmdline("aegis.rootfs=virtiofs").get("aegis.rootfs")).toBe("virtiofs");
  });

  it("skips the rootfs when no disk is attached", () => {
    expect(mountPlan({ ...cfg, rootDisk: undefined }, new Set()).map((s) => s.target)).toEqual(["/tmp", "/run"]);
  });

  it("parses /proc/mounts", () => {
    expect(parseMounts("proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n")).toEqual(new Set(["/proc", "/sys"]));
  });

  it("unmounts the rootfs before rebooting", () => {
    const s = shutdownScript(true);
    expect(s.indexOf(`umount ${ROOT} `)).toBeLessThan(s.indexOf("reboot -f"));
    expect(shutdownScript(false)).toBe("sync\nreboot -f\n");
  });

  it("plans the syscall power-off in the script's order: below the rootfs children first, then the rootfs and its layers", () => {
    const mounted = [ROOT, `${ROOT}/proc`, `${ROOT}/dev`, `${ROOT}/dev/pts`, `${ROOT}/usr/bin/aegis-agent`, `${ROOT}/workspace`, "/tmp", `${ROOT}/dev/pts`];
    expect(unmountPlan(mounted)).toEqual([`${ROOT}/workspace`, `${ROOT}/usr/bin/aegis-agent`, `${ROOT}/proc`, `${ROOT}/dev/pts`, `${ROOT}/dev/pts`, `${ROOT}/dev`, ROOT, "/mnt/rw", "/mnt/lower"]);
  });

  it("unmounts everything below the rootfs, children before parents, including the injected binaries", async () => {
    const mounts = [
      `overlay ${ROOT} overlay rw 0 0`,
      `proc ${ROOT}/proc proc rw 0 0`,
      `devtmpfs ${ROOT}/dev devtmpfs rw 0 0`,
      `devpts ${ROOT}/dev/pts devpts rw 0 0`,
      `/dev/vda ${ROOT}/usr/bin/aegis-agent ext4 ro 0 0`,
      `workspace ${ROOT}/workspace virtiofs rw 0 0`,
      "tmpfs /tmp tmpfs rw 0 0",
    ].join("\n");
    const file = `${process.env.TMPDIR ?? "/tmp"}/aegis-mounts-${process.pid}`;
    await Bun.write(file, `${mounts}\n`);
    const loop = shutdownScript(true).split("\n")[0]!.replace("/proc/mounts", file);
    const p = Bun.spawn(["/bin/busybox", "sh", "-c", `umount() { echo "$1"; }\n${loop}`], { stdout: "pipe", stderr: "pipe" });
    const [out, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    await Bun.file(file).delete();
    expect(code).toBe(0);
    expect(out.trim().split("\n")).toEqual([`${ROOT}/workspace`, `${ROOT}/usr/bin/aegis-agent`, `${ROOT}/proc`, `${ROOT}/dev/pts`, `${ROOT}/dev`]);
  });
});

describe("harness processes", () => {
  it("runs through busybox nsenter with root and working directory", () => {
    expect(chrootArgv(ROOT, "/srv/app", ["ls", "-l"])).toEqual(["/bin/busybox", "nsenter", `-r${ROOT}`, `-w${ROOT}/srv/app`, "--", "ls", "-l"]);
    expect(chrootArgv(undefined, "/", ["ls"])).toEqual(["ls"]);
  });

  it("adds AEGIS_HOST_IP and a default PATH that the caller may override", () => {
    expect(processEnv({})).toEqual({ PATH: DEFAULT_PATH, HOME: "/root", AEGIS_HOST_IP: "10.0.2.2" });
    expect(processEnv({ PATH: "/x", AEGIS_HOST_IP: "spoof" })).toMatchObject({ PATH: "/x", AEGIS_HOST_IP: "10.0.2.2" });
  });

  it("maps signal names to numbers and rejects unknown ones", () => {
    expect(signalNumber("SIGTERM")).toBe(15);
    expect(signalNumber("SIGKILL")).toBe(9);
    expect(() => signalNumber("SIGNOPE")).toThrow(/unknown signal/);
  });

  it("parses /proc/PID/stat even when the command name has spaces and parens", () => {
    expect(parseStat("123 (a (b) c) Z 1 123 123 0")).toEqual({ state: "Z", ppid: 1 });
  });
});

describe("initramfs /init", () => {
  const s = initScript({ base: ["virtio", "virtio_blk"], workspace: ["fuse", "virtiofs"], harness: "/tools/aegis", release: "6.1.0-57-cloud-amd64" });

  it("loads the base modules in the given order with one modprobe, the workspace ones only on request, then execs the harness", () => {
    expect(s.startsWith("#!/bin/busybox sh\n")).toBe(true);
    expect(s).toContain("\nmodprobe -a virtio virtio_blk || ");
    expect(s).toContain('*" aegis.workspace=1 "*|*" aegis.rootfs=virtiofs "*)\n  modprobe -a fuse virtiofs || ');
    expect(s.indexOf("modprobe -a virtio ")).toBeLessThan(s.indexOf("modprobe -a fuse"));
    expect(s).toContain('insmod "/lib/modules/6.1.0-57-cloud-amd64/$1.ko"');
    expect(s.trimEnd().endsWith("exec /tools/aegis __harness")).toBe(true);
  });

  it("falls back to one insmod per module, in order, when modprobe fails", async () => {
    const dir = mkdtempSync(join(tmpdir(), "init-"));
    try {
      // The script's module lines, run by the host shell with stand-ins that log each call.
      const lines = s.split("\n").filter((l) => l.startsWith("ld() ") || l.startsWith("modprobe -a "));
      const script = (modprobeExit: number) =>
        [`modprobe() { echo "modprobe $*" >> ${dir}/log; return ${modprobeExit}; }`, `insmod() { echo "insmod $1" >> ${dir}/log; }`, ...lines].join("\n");
      for (const [exit, want] of [
        [0, ["modprobe -a virtio virtio_blk"]],
        [1, ["modprobe -a virtio virtio_blk", "insmod /lib/modules/6.1.0-57-cloud-amd64/virtio.ko", "insmod /lib/modules/6.1.0-57-cloud-amd64/virtio_blk.ko"]],
      ] as const) {
        rmSync(join(dir, "log"), { force: true });
        const p = Bun.spawn(["sh", "-c", script(exit)], { stdout: "pipe", stderr: "pipe" });
        const [, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
        expect(code).toBe(0);
        expect(readFileSync(join(dir, "log"), "utf8").trim().split("\n")).toEqual([...want]);
        if (exit !== 0) expect(err).toContain("aegis-init: modprobe -a failed; loading the modules one by one");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes modules.dep with each module's dependencies that are in the initramfs", () => {
    const dep = modulesDep([
      { name: "virtio", path: "/x/virtio.ko", deps: [] },
      { name: "virtio_ring", path: "/x/virtio_ring.ko", deps: [] },
      { name: "virtio_blk", path: "/x/virtio_blk.ko", deps: ["virtio", "virtio_ring", "builtin_thing"] },
    ]);
    expect(dep).toBe("virtio.ko:\nvirtio_ring.ko:\nvirtio_blk.ko: virtio.ko virtio_ring.ko\n");
  });
});
