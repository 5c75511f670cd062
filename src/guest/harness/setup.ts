/**
 * @module guest/harness/setup
 * Prepares the guest before `ready`: tmpfs on /tmp and /run, the user rootfs
 * (read-only ext4 lower + writable upper on tmpfs or the `aegis-overlay` disk,
 * joined by overlayfs at /mnt/root) with proc/sys/dev/tmp/run inside it, DNS
 * and hostname, loopback and eth0 for QEMU user networking, and the virtiofs
 * workspace.
 *
 * Every step is a direct syscall through bun:ffi (see libc.ts) because every
 * fork+exec costs 10-20 ms under TCG; a busybox script doing the same took
 * ~0.5 s. The mount plan is a pure function, unit-tested.
 */
import type { GuestConfig } from "./config.ts";

/** Where the user rootfs is assembled; processes are chrooted here. */
export const ROOT = "/mnt/root";

/** QEMU user-networking addresses (fixed by SLIRP). */
export const NET = { guest: "10.0.2.15/24", gateway: "10.0.2.2", dns: "10.0.2.3" } as const;

/** One mount(2) call of the setup plan. */
export interface MountStep {
  source: string;
  target: string;
  fstype: string;
  flags?: number;
  data?: string;
}

const NOSUID_NODEV = 2 | 4;

/** The mounts that assemble the guest, in order; `mounted` lists mount points that already exist. */
export function mountPlan(cfg: GuestConfig, mounted: Set<string>): MountStep[] {
  const m: MountStep[] = [];
  if (!mounted.has("/tmp")) m.push({ source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=1777" });
  if (!mounted.has("/run")) m.push({ source: "tmpfs", target: "/run", fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=755" });
  if (!cfg.rootDisk) return m;
  m.push({ source: cfg.rootDisk, target: "/mnt/lower", fstype: "ext4", flags: 1, data: "" });
  m.push(
    cfg.overlayDisk
      ? { source: cfg.overlayDisk, target: "/mnt/rw", fstype: "ext4" }
      : { source: "tmpfs", target: "/mnt/rw", fstype: "tmpfs", data: "mode=755" },
  );
  m.push({ source: "overlay", target: ROOT, fstype: "overlay", data: "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work" });
  m.push(
    { source: "proc", target: `${ROOT}/proc`, fstype: "proc", flags: NOSUID_NODEV | 8 },
    { source: "sysfs", target: `${ROOT}/sys`, fstype: "sysfs", flags: NOSUID_NODEV | 8 },
    { source: "devtmpfs", target: `${ROOT}/dev`, fstype: "devtmpfs", flags: 2 },
    { source: "devpts", target: `${ROOT}/dev/pts`, fstype: "devpts", flags: 2 | 8, data: "newinstance,ptmxmode=0666,mode=620" },
    { source: "tmpfs", target: `${ROOT}/dev/shm`, fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=1777" },
    { source: "tmpfs", target: `${ROOT}/tmp`, fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=1777" },
    { source: "tmpfs", target: `${ROOT}/run`, fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=755" },
  );
  if (cfg.workspace) m.push({ source: "workspace", target: `${ROOT}/workspace`, fstype: "virtiofs" });
  return m;
}

/**
 * Assemble the guest with direct syscalls (mount(2), ioctls for the network):
 * no fork at all, which under TCG saves ~0.5 s against a busybox script.
 * Directories are created right before the mount that needs them (the
 * upper/work dirs after /mnt/rw is mounted).
 */
export async function setupGuest(cfg: GuestConfig, mounted: Set<string>): Promise<void> {
  const { mkdirSync, rmSync, writeFileSync, existsSync } = await import("node:fs");
  const libc = await import("./libc.ts");
  for (const step of mountPlan(cfg, mounted)) {
    if (step.target === ROOT) {
      mkdirSync("/mnt/rw/upper", { recursive: true });
      mkdirSync("/mnt/rw/work", { recursive: true });
    }
    mkdirSync(step.target, { recursive: true });
    libc.mount(step.source, step.target, step.fstype, step.flags ?? 0, step.data);
  }
  if (cfg.rootDisk) {
    // Images often ship resolv.conf as a symlink into /run (systemd-resolved): replace it in the overlay.
    rmSync(`${ROOT}/etc/resolv.conf`, { force: true });
    mkdirSync(`${ROOT}/etc`, { recursive: true });
    writeFileSync(`${ROOT}/etc/resolv.conf`, `nameserver ${NET.dns}\n`);
    const hosts = `${ROOT}/etc/hosts`;
    const base = existsSync(hosts) ? "" : "127.0.0.1 localhost\n::1 localhost\n";
    writeFileSync(hosts, `${base}127.0.1.1 ${cfg.hostname}\n`, { flag: "a" });
  }
  writeFileSync("/proc/sys/kernel/hostname", cfg.hostname);
  libc.configureNetwork(cfg.net ? { iface: "eth0", address: "10.0.2.15", netmask: "255.255.255.0", gateway: NET.gateway } : undefined);
}

/** The set of mount points currently mounted (empty when /proc is not mounted). */
export function parseMounts(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f[1]) out.add(f[1]);
  }
  return out;
}

/** Shutdown script: unmount the user rootfs in reverse order (each step reported, not fatal), sync, reboot. */
export function shutdownScript(hasRoot: boolean): string {
  const L: string[] = [];
  if (hasRoot) {
    for (const m of ["workspace", "dev/shm", "dev/pts", "dev", "proc", "sys", "tmp", "run"]) {
      L.push(`if grep -q ' ${ROOT}/${m} ' /proc/mounts; then umount ${ROOT}/${m} || umount -l ${ROOT}/${m}; fi`);
    }
    L.push(`umount ${ROOT} || umount -l ${ROOT}`, "umount /mnt/rw || mount -o remount,ro /mnt/rw", "umount /mnt/lower || true");
  }
  L.push("sync", "reboot -f");
  return `${L.join("\n")}\n`;
}
