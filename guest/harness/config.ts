/**
 * @module guest/harness/config
 * What the harness learns at boot without the control channel: the kernel
 * command line (only non-secret switches: `aegis.hostname=`, `aegis.workspace=1`, `aegis.rootfs=virtiofs`,
 * `aegis.defer=1`, `aegis.podnet=` for a pod network)
 * and the virtio-blk disks, identified by their `serial=` (QEMU) because
 * erofs and some images carry no label.
 *
 * Under libkrun the kernel command line carries no `aegis.*` words (libkrun
 * writes its own) and disk serials are not ours, so the vmm worker passes
 * the same switches as environment variables instead: `AEGIS_HOSTNAME`,
 * `AEGIS_WORKSPACE=1` and `AEGIS_DISKS` (our disk names in attach order,
 * i.e. `/dev/vda`, `/dev/vdb`, ...). The environment wins when present.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { PODNET_KEY } from "../../src/api/schema/guest-wire.ts";
import type { PodNetConfig } from "../../src/api/schema/pod-network.ts";

/** Boot configuration of this guest. */
export interface GuestConfig {
  hostname: string;
  /** Mount the virtiofs tag `workspace` at /workspace. */
  workspace: boolean;
  /** Block device of the read-only rootfs image (serial `aegis-root`), if attached. */
  rootDisk?: string;
  /** Block device of the writable overlay upper layer (serial `aegis-overlay`), if attached. */
  overlayDisk?: string;
  /** The root filesystem's lower layer is the virtiofs tag `aegis-root` (`aegis.rootfs=virtiofs`), not the ext4 disk. */
  rootVirtiofs: boolean;
  /** Whether a network interface exists. */
  net: boolean;
  /** Deferred setup (`aegis.defer=1`): mount the rootfs only on the `setup` RPC (template VMs). */
  defer: boolean;
  /** Pod network (`aegis.podnet=`, net-config.ts): eth0 takes the pod's address instead of slirp's. */
  podNet?: PodNetConfig;
}

/** Parse `key=value` words of a kernel command line into a map (bare words map to ""). */
export function parseCmdline(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const word of text.trim().split(/\s+/)) {
    if (!word) continue;
    const eq = word.indexOf("=");
    if (eq < 0) out.set(word, "");
    else out.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return out;
}

/** Map virtio-blk serial -> `/dev/vdX` by reading `/sys/block/vd*\/serial`. */
export function disksBySerial(sysBlock = "/sys/block"): Map<string, string> {
  const out = new Map<string, string>();
  for (const dev of readdirSync(sysBlock)) {
    if (!dev.startsWith("vd")) continue;
    const serialPath = `${sysBlock}/${dev}/serial`;
    if (!existsSync(serialPath)) continue;
    out.set(readFileSync(serialPath, "utf8").trim(), `/dev/${dev}`);
  }
  return out;
}

/** Map our disk names to devices from `AEGIS_DISKS` (attach order: vda, vdb, ...). */
export function disksFromEnv(value: string): Map<string, string> {
  const out = new Map<string, string>();
  value
    .split(",")
    .filter((name) => name.length > 0)
    .forEach((name, i) => out.set(name, `/dev/vd${String.fromCharCode(97 + i)}`));
  return out;
}

/**
 * Read the boot configuration from /proc and /sys (and, under libkrun, the
 * environment). The pod network's schema (zod) is loaded only when the
 * command line has one, so a plain boot never evaluates zod here.
 */
export async function readGuestConfig(env = process.env): Promise<GuestConfig> {
  const cmd = parseCmdline(readFileSync("/proc/cmdline", "utf8"));
  const disks = env.AEGIS_DISKS ? disksFromEnv(env.AEGIS_DISKS) : disksBySerial();
  return {
    hostname: env.AEGIS_HOSTNAME || cmd.get("aegis.hostname") || "aegis",
    workspace: env.AEGIS_WORKSPACE === "1" || cmd.get("aegis.workspace") === "1",
    rootDisk: disks.get("aegis-root"),
    overlayDisk: disks.get("aegis-overlay"),
    rootVirtiofs: cmd.get("aegis.rootfs") === "virtiofs",
    net: existsSync("/sys/class/net/eth0"),
    defer: cmd.get("aegis.defer") === "1",
    ...(cmd.has(PODNET_KEY) ? { podNet: (await import("../../src/api/schema/pod-network.ts")).decodePodNet(cmd.get(PODNET_KEY)!) } : {}),
  };
}
