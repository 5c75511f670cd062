/**
 * @module vmm/accel
 * Which hardware accelerator QEMU can really use. KVM counts only when the
 * CPU advertises virtualisation (`vmx`/`svm` in /proc/cpuinfo) AND /dev/kvm
 * opens read-write: nested hosts expose a /dev/kvm that hangs ordinary
 * kernels, and their cpuinfo lacks the flags. HVF on macOS. Otherwise TCG
 * (software emulation, ~10x slower, but correct). `AEGIS_ACCEL=kvm|hvf|tcg`
 * forces a choice.
 */
import { closeSync, openSync, readFileSync } from "node:fs";

/** A QEMU accelerator. */
export type AccelName = "kvm" | "hvf" | "tcg";

/** The detected accelerator and why. */
export interface AccelInfo {
  name: AccelName;
  reason: string;
}

/** True when a /proc/cpuinfo text lists the vmx or svm flag. */
export function cpuHasVirtFlags(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/** Host TSC frequency in kHz from /proc/cpuinfo's first `cpu MHz` line (x86 only), or undefined. */
export function tscKhzFromCpuinfo(cpuinfo: string): number | undefined {
  const m = cpuinfo.match(/^cpu MHz\s*:\s*([0-9.]+)/m);
  if (!m) return undefined;
  const khz = Math.round(Number(m[1]) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

/** Inputs of the decision, injectable for tests. */
export interface AccelProbe {
  platform: NodeJS.Platform;
  env: Record<string, string | undefined>;
  cpuinfo: () => string;
  kvmOpens: () => boolean;
}

function kvmOpensRw(): boolean {
  try {
    closeSync(openSync("/dev/kvm", "r+"));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EACCES" || code === "EPERM" || code === "ENXIO" || code === "ENODEV") return false;
    throw err;
  }
}

const realProbe: AccelProbe = {
  platform: process.platform,
  env: process.env,
  cpuinfo: () => readFileSync("/proc/cpuinfo", "utf8"),
  kvmOpens: kvmOpensRw,
};

/** Decide the accelerator (see module docs). */
export function detectAccel(probe: AccelProbe = realProbe): AccelInfo {
  const forced = probe.env.AEGIS_ACCEL?.toLowerCase();
  if (forced) {
    if (forced !== "kvm" && forced !== "hvf" && forced !== "tcg") {
      throw new Error(`AEGIS_ACCEL=${forced} is not one of kvm, hvf, tcg`);
    }
    return { name: forced, reason: "forced by AEGIS_ACCEL" };
  }
  if (probe.platform === "darwin") return { name: "hvf", reason: "macOS Hypervisor.framework" };
  if (probe.platform !== "linux") return { name: "tcg", reason: `no accelerator support on ${probe.platform}` };
  if (!cpuHasVirtFlags(probe.cpuinfo())) return { name: "tcg", reason: "CPU flags lack vmx/svm (no usable KVM); using TCG software emulation" };
  if (!probe.kvmOpens()) return { name: "tcg", reason: "/dev/kvm cannot be opened read-write; using TCG software emulation" };
  return { name: "kvm", reason: "CPU has vmx/svm and /dev/kvm opens" };
}
