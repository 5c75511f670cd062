/**
 * @module guest/harness/config
 * What the harness learns at boot without the control channel: the kernel
 * command line (only non-secret switches: `aegis.hostname=`, `aegis.workspace=1`,
 * `aegis.defer=1`)
 * and the virtio-blk disks, identified by their `serial=` (QEMU) because
 * erofs and some images carry no label.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** Boot configuration of this guest. */
export interface GuestConfig {
  hostname: string;
  /** Mount the virtiofs tag `workspace` at /workspace. */
  workspace: boolean;
  /** Block device of the read-only rootfs image (serial `aegis-root`), if attached. */
  rootDisk?: string;
  /** Block device of the writable overlay upper layer (serial `aegis-overlay`), if attached. */
  overlayDisk?: string;
  /** Whether a network interface exists. */
  net: boolean;
  /** Deferred setup (`aegis.defer=1`): mount the rootfs only on the `setup` RPC (template VMs). */
  defer: boolean;
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

/** Read the boot configuration from /proc and /sys. */
export function readGuestConfig(): GuestConfig {
  const cmd = parseCmdline(readFileSync("/proc/cmdline", "utf8"));
  const disks = disksBySerial();
  return {
    hostname: cmd.get("aegis.hostname") || "aegis",
    workspace: cmd.get("aegis.workspace") === "1",
    rootDisk: disks.get("aegis-root"),
    overlayDisk: disks.get("aegis-overlay"),
    net: existsSync("/sys/class/net/eth0"),
    defer: cmd.get("aegis.defer") === "1",
  };
}
