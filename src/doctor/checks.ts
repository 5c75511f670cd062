/**
 * @module doctor/checks
 * What `aegis doctor` inspects: the tools and libraries this project needs on
 * the host (Bun, QEMU, an accelerator, libkrun, e2fsprogs, virtiofsd, and
 * for `aegis setup` xz and a way to authenticate the Debian archive), each as
 * a name, a verdict and a detail line.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { arch } from "node:os";
import { join } from "node:path";
import { statePaths } from "../paths.ts";
import { probeLibkrun } from "../vmm/select.ts";
import { detectAccel } from "../vmm/accel.ts";
import { trustFromEnv } from "../vmm/assets/debian-inrelease.ts";

/** One doctor finding. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The QEMU system emulator for this host's architecture. */
export function qemuBinaryName(): string {
  return `qemu-system-${arch() === "arm64" ? "aarch64" : "x86_64"}`;
}

/** The newest built guest assets under `guestDir` (their manifest), or null. */
export function newestGuestAssets(guestDir: string): { hash: string; kernelVersion: string; kernelSource?: string; builtAt?: string } | null {
  if (!existsSync(guestDir)) return null;
  const manifests = readdirSync(guestDir)
    .map((d) => join(guestDir, d, "manifest.json"))
    .filter((m) => existsSync(m))
    .map((m) => ({ m, mtime: statSync(m).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  const newest = manifests[0];
  return newest ? (JSON.parse(readFileSync(newest.m, "utf8")) as { hash: string; kernelVersion: string; kernelSource?: string; builtAt?: string }) : null;
}

/** The guest-asset finding: kernel version and asset build, or how to get them. */
export function guestCheck(guestDir: string): Check {
  const assets = newestGuestAssets(guestDir);
  return assets
    ? { name: "Guest", ok: true, detail: `kernel ${assets.kernelVersion} (${assets.kernelSource ?? "?"}), assets ${assets.hash}${assets.builtAt ? ` built ${assets.builtAt}` : ""}` }
    : { name: "Guest", ok: false, detail: "assets not built yet (run 'aegis setup'; 'aegis up' builds them in the background)" };
}

/** How `aegis setup` would authenticate Debian's archive (gpgv + keyring, pinned InRelease sums, or not at all). */
export function archiveTrustCheck(env = process.env): Check {
  try {
    const t = trustFromEnv(env);
    return { name: "Debian", ok: true, detail: t.kind === "gpgv" ? `archive checked with ${t.gpgv} and ${t.keyring}` : `archive checked against ${t.sha256.size} pinned InRelease sha256` };
  } catch (err) {
    return { name: "Debian", ok: false, detail: `${(err instanceof Error ? err.message : String(err)).split("\n")[0]} (aegis setup needs it unless apt fetches the kernel)` };
  }
}

/** Run every host check. */
export function hostChecks(): Check[] {
  const qemu = Bun.which(qemuBinaryName());
  const mkfs = Bun.which("mkfs.ext4") ?? ["/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4"].find((p) => Bun.file(p).size > 0) ?? null;
  const libkrun = probeLibkrun();
  const accel = detectAccel();
  const virtiofsd = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"].find((p) => Bun.file(p).size > 0) ?? Bun.which("virtiofsd");
  return [
    { name: "Bun", ok: true, detail: `${Bun.version} (embedded)` },
    { name: "QEMU", ok: qemu !== null, detail: qemu ? `found at ${qemu}` : `${qemuBinaryName()} not found (apt-get install qemu-system-x86)` },
    { name: "Accel", ok: true, detail: `${accel.name} (${accel.reason})` },
    {
      name: "libkrun",
      ok: libkrun.ok,
      detail: libkrun.ok ? `found at ${libkrun.path} (loads)` : `${libkrun.reason}; the QEMU backend is used instead`,
    },
    { name: "e2fsprogs", ok: mkfs !== null, detail: mkfs ? "found" : "mkfs.ext4 not found (apt-get install e2fsprogs)" },
    { name: "xz", ok: Bun.which("xz") !== null, detail: Bun.which("xz") ? "found (unpacks Debian packages)" : "not found: aegis setup needs it to unpack the kernel (apt-get install xz-utils; brew install xz)" },
    archiveTrustCheck(),
    guestCheck(statePaths().guest),
    { name: "virtiofsd", ok: virtiofsd != null, detail: virtiofsd ? `found at ${virtiofsd}` : "not found (workspaces need it; apt-get install qemu-system-common)" },
  ];
}
