/**
 * @module guest/harness/setup
 * Prepares the guest before `ready`: tmpfs on /tmp and /run, the user rootfs
 * (read-only ext4 lower + writable upper on tmpfs or the `aegis-overlay` disk,
 * joined by overlayfs at /mnt/root) with proc/sys/dev/tmp/run inside it, DNS
 * and hostname, loopback and eth0 for QEMU user networking (or a pod network: net-config.ts), and the virtiofs
 * workspace.
 *
 * Inside the rootfs, `/usr/bin/aegis-agent` and `/usr/bin/aegis-harness`
 * are read-only bind mounts of the harness binary, with glibc's loader and
 * libraries bound in for images without glibc (see inject.ts).
 *
 * Deferred setup (`aegis.defer=1`, template VMs): only what names no
 * instance runs before `ready`: the machine-wide part (`setupBase`: /tmp,
 * /run, loopback and eth0, whose SLIRP addresses are the same in every VM)
 * and `setupTemplate`: the read-only image (the template key includes it)
 * and, without an overlay disk, the whole root over tmpfs with the binaries
 * injected, resolv.conf written and /etc/hosts copied up. The rest
 * (`setupInstance`: the overlay disk and what is mounted over it, the
 * hostname in the kernel and /etc/hosts) runs on the `setup` RPC after a
 * restore, so one snapshot serves many instances. Measured in clones of
 * the task template (guest phase lines, TCG, loaded host): the `setup`
 * handler took 410-650 ms when it mounted everything (the image's ext4
 * mount alone 100-140 ms, the MCP socket 90-260 ms, the binaries 45-80 ms),
 * 80-230 ms after (clock + entropy, /etc/hosts, hostname).
 *
 * Every step is a direct syscall through bun:ffi (see libc.ts) because every
 * fork+exec costs 10-20 ms under TCG; a busybox script doing the same took
 * ~0.5 s. The mount plan is a pure function, unit-tested.
 */
import type { GuestConfig } from "./config.ts";
import type { PhaseLog } from "./phase-log.ts";

/** Where the user rootfs is assembled; processes are chrooted here. */
export const ROOT = "/mnt/root";

/** The rootfs's hosts file, and what it holds when the image has none (before the hostname line). */
const HOSTS = `${ROOT}/etc/hosts`;
const DEFAULT_HOSTS = "127.0.0.1 localhost\n::1 localhost\n";

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
  return [...baseMountPlan(mounted), ...instanceMountPlan(cfg)];
}

/** Machine-wide mounts (/tmp, /run of the initramfs), skipping those already mounted. */
export function baseMountPlan(mounted: Set<string>): MountStep[] {
  const m: MountStep[] = [];
  if (!mounted.has("/tmp")) m.push({ source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=1777" });
  if (!mounted.has("/run")) m.push({ source: "tmpfs", target: "/run", fstype: "tmpfs", flags: NOSUID_NODEV, data: "mode=755" });
  return m;
}

/** Per-instance mounts: the rootfs overlay with proc/sys/dev/tmp/run inside, and the workspace. */
export function instanceMountPlan(cfg: GuestConfig): MountStep[] {
  const m: MountStep[] = [];
  if (!cfg.rootDisk) return m;
  // A host-directory rootfs (containerd shim) is the read-only virtiofs share; otherwise the ext4 image.
  m.push(cfg.rootVirtiofs ? { source: "aegis-root", target: "/mnt/lower", fstype: "virtiofs", flags: 1 } : { source: cfg.rootDisk, target: "/mnt/lower", fstype: "ext4", flags: 1, data: "" });
  m.push(
    cfg.overlayDisk
      ? // noinit_itable: no background zeroing of the lazily-initialised inode tables (see vmm/overlay-disk.ts).
        { source: cfg.overlayDisk, target: "/mnt/rw", fstype: "ext4", data: "noinit_itable" }
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
 */
export async function setupGuest(cfg: GuestConfig, mounted: Set<string>): Promise<void> {
  await setupBase(cfg, mounted);
  await setupInstance(cfg);
}

/** The machine-wide part: /tmp, /run, a default hostname, loopback and eth0. */
export async function setupBase(cfg: GuestConfig, mounted: Set<string>): Promise<void> {
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const libc = await import("./libc.ts");
  for (const step of baseMountPlan(mounted)) {
    mkdirSync(step.target, { recursive: true });
    libc.mount(step.source, step.target, step.fstype, step.flags ?? 0, step.data);
  }
  writeFileSync("/proc/sys/kernel/hostname", cfg.hostname);
  // What the injection needs from the initramfs, found now: a template snapshot then already holds it.
  if (cfg.rootDisk) (await import("./inject.ts")).selfDependencies();
  if (cfg.podNet && cfg.net) (await import("./net-config.ts")).configurePodNetwork(cfg.podNet);
  else (await import("./inet-ioctl.ts")).configureNetwork(cfg.net ? { iface: "eth0", address: "10.0.2.15", netmask: "255.255.255.0", gateway: NET.gateway } : undefined);
}

/**
 * The part of the per-instance mounts a template VM can do before its
 * snapshot: the longest prefix of {@link instanceMountPlan} that names
 * nothing of the instance, i.e. everything before the instance's own overlay
 * disk (or workspace, or a virtiofs rootfs; VMs with those are never
 * templated). The rootfs image itself is part of the template key
 * (vmm/templates.ts), so every clone attaches the same read-only file.
 * Without an overlay disk (tasks: a tmpfs upper layer) that is the whole
 * assembled root.
 */
export function templateMountCount(cfg: GuestConfig): number {
  const plan = instanceMountPlan(cfg);
  const i = plan.findIndex((s) => s.source === cfg.overlayDisk || s.fstype === "virtiofs");
  return i < 0 ? plan.length : i;
}

/** What a deferred (template) setup did before `ready`, so the `setup` RPC does only the rest. */
export interface EarlySetup {
  /** How many steps of {@link instanceMountPlan} are mounted. */
  mounts: number;
  /** The whole root is assembled, the binaries injected and resolv.conf written (no overlay disk). */
  rootPrepared: boolean;
}

/**
 * Deferred setup's instance-independent part, run before `ready` in a
 * template VM ({@link templateMountCount}): the read-only lower layer, and,
 * when the upper layer is tmpfs, the whole root with its binaries and
 * resolv.conf. Measured in clones of the task template (TCG, 2 loaded
 * cores): the lower ext4 mount alone took ~140 ms of every clone's `setup`.
 */
export async function setupTemplate(cfg: GuestConfig): Promise<EarlySetup> {
  if (!cfg.rootDisk || cfg.rootVirtiofs || cfg.workspace) return { mounts: 0, rootPrepared: false };
  const mounts = templateMountCount(cfg);
  await mountSteps(instanceMountPlan(cfg).slice(0, mounts));
  const rootPrepared = mounts === instanceMountPlan(cfg).length;
  if (rootPrepared) {
    await prepareRoot(cfg);
    // Copied up into the tmpfs upper layer now, so a clone's `setup` only appends its hostname line: the
    // copy-up (an ext4 read of the image) was ~100 ms of it under TCG.
    const { existsSync, readFileSync, writeFileSync } = await import("node:fs");
    writeFileSync(HOSTS, existsSync(HOSTS) ? readFileSync(HOSTS, "utf8") : DEFAULT_HOSTS);
  }
  return { mounts, rootPrepared };
}

/** Mount `steps` in order, creating each mount point (and upper/work right before the overlay that needs them). */
async function mountSteps(steps: MountStep[], phases?: PhaseLog): Promise<void> {
  const { mkdirSync } = await import("node:fs");
  const libc = await import("./libc.ts");
  for (const step of steps) {
    if (step.target === ROOT) {
      mkdirSync("/mnt/rw/upper", { recursive: true });
      mkdirSync("/mnt/rw/work", { recursive: true });
    }
    mkdirSync(step.target, { recursive: true });
    libc.mount(step.source, step.target, step.fstype, step.flags ?? 0, step.data);
    phases?.mark(`mount ${step.target}`);
  }
}

/** Inject the Aegis binaries into the assembled root and write its resolv.conf (nothing here names the instance). */
async function prepareRoot(cfg: GuestConfig, phases?: PhaseLog): Promise<void> {
  const { mkdirSync, rmSync, writeFileSync } = await import("node:fs");
  const t0 = performance.now();
  const { injectBinaries, INJECTED_BINARIES } = await import("./inject.ts");
  const steps = await injectBinaries(ROOT);
  const glibc = steps.length > INJECTED_BINARIES.length ? `; the image has no glibc loader, bound in ${steps.slice(INJECTED_BINARIES.length).map((s) => s.source).join(", ")}` : "";
  (await import("./log.ts")).log(`injected ${INJECTED_BINARIES.join(", ")} in ${(performance.now() - t0).toFixed(1)} ms${glibc}`);
  phases?.mark("inject");
  // Images often ship resolv.conf as a symlink into /run (systemd-resolved): replace it in the overlay.
  rmSync(`${ROOT}/etc/resolv.conf`, { force: true });
  mkdirSync(`${ROOT}/etc`, { recursive: true });
  writeFileSync(`${ROOT}/etc/resolv.conf`, cfg.podNet ? (await import("./net-config.ts")).podResolvConf(cfg.podNet) : `nameserver ${NET.dns}\n`);
  phases?.mark("resolv.conf");
}

/**
 * The per-instance part: mount the rootfs overlay (and workspace), inject
 * the Aegis binaries, write resolv.conf and hosts, set the hostname; after
 * a template's {@link setupTemplate} (`early`), only what it left.
 * Directories are created right before the mount that needs them
 * (upper/work after /mnt/rw is mounted).
 */
export async function setupInstance(cfg: GuestConfig, phases?: PhaseLog, early?: EarlySetup): Promise<void> {
  const { writeFileSync, existsSync, readFileSync } = await import("node:fs");
  await mountSteps(instanceMountPlan(cfg).slice(early?.mounts ?? 0), phases);
  if (cfg.rootDisk) {
    if (!early?.rootPrepared) await prepareRoot(cfg, phases);
    const line = `127.0.1.1 ${cfg.hostname}`;
    const text = existsSync(HOSTS) ? readFileSync(HOSTS, "utf8") : DEFAULT_HOSTS;
    // A persistent overlay already has the line from an earlier boot: add it once.
    if (!text.split("\n").includes(line)) writeFileSync(HOSTS, `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}${line}\n`);
    phases?.mark("hosts");
  } else {
    // No rootfs: processes run in the initramfs, which has glibc already; links are enough there.
    const { symlinkSync } = await import("node:fs");
    const { INJECT_DIR, INJECTED_BINARIES } = await import("./inject.ts");
    for (const name of INJECTED_BINARIES) if (!existsSync(`${INJECT_DIR}/${name}`)) symlinkSync(process.execPath, `${INJECT_DIR}/${name}`);
  }
  writeFileSync("/proc/sys/kernel/hostname", cfg.hostname);
  phases?.mark("hostname");
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

/**
 * The unmount order at power-off: every mount under ROOT, deepest first
 * (reverse lexical order, what `sort -r` gives the script below), then ROOT
 * itself, the writable layer and the lower layer. `mounted` is the mount
 * points of /proc/mounts, one per line (a point mounted twice is unmounted twice).
 */
export function unmountPlan(mounted: Iterable<string>): string[] {
  const inner = [...mounted].filter((m) => m.startsWith(`${ROOT}/`)).sort().reverse();
  return [...inner, ROOT, "/mnt/rw", "/mnt/lower"];
}

/**
 * Power off with direct syscalls: unmount the user rootfs (plan above; a busy
 * mount is detached lazily, a busy writable layer is remounted read-only so its
 * journal is clean), sync, reboot(2). Each failed step is reported and the next
 * one still runs. This replaced running {@link shutdownScript} as the only path:
 * that script forks ~15 times (sh, awk, sort, one umount per mount, sync,
 * reboot). Measured on `aegis run -- true` (6 runs each, TCG, shared host):
 * guest uptime from `ready` to the kernel's reboot line 0.82-2.55 s (median
 * 1.24) with the script, 0.44-0.79 s (median 0.53) with the syscalls. The script remains the fallback when the FFI path
 * itself fails. Returns only if reboot(2) failed.
 */
export async function powerOffDirect(hasRoot: boolean, report: (msg: string) => void): Promise<void> {
  const libc = await import("./libc.ts");
  if (hasRoot) {
    const { readFileSync } = await import("node:fs");
    const plan = unmountPlan(readFileSync("/proc/mounts", "utf8").split("\n").map((line) => line.split(" ")[1] ?? ""));
    for (const target of plan) {
      try {
        libc.umount(target);
      } catch (err) {
        try {
          if (target === "/mnt/rw") libc.mount("none", target, "none", libc.MS.REMOUNT | libc.MS.RDONLY);
          else if (target !== "/mnt/lower") libc.umount(target, 2);
        } catch (err2) {
          report(`power off: ${String(err)}; then ${String(err2)}`);
        }
      }
    }
  }
  libc.syncAll();
  libc.rebootNow();
}

/** Shutdown script: unmount the user rootfs in reverse order (each step reported, not fatal), sync, reboot. */
export function shutdownScript(hasRoot: boolean): string {
  const L: string[] = [];
  if (hasRoot) {
    // Every mount below the root (proc, dev, workspace, the injected binaries, and whatever user
    // processes mounted), children first: reverse lexical order puts /a/b before /a.
    L.push(`for m in $(awk '{ if (index($2, "${ROOT}/") == 1) print $2 }' /proc/mounts | sort -r); do umount "$m" || umount -l "$m"; done`);
    L.push(`umount ${ROOT} || umount -l ${ROOT}`, "umount /mnt/rw || mount -o remount,ro /mnt/rw", "umount /mnt/lower || true");
  }
  L.push("sync", "reboot -f");
  return `${L.join("\n")}\n`;
}
