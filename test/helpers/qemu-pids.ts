/**
 * @module test/helpers/qemu-pids
 * The QEMU processes of one test's AEGIS_HOME, found by their command line
 * (VMs run in their own session, so they are not the test's children).
 */
import { readdirSync, readFileSync } from "node:fs";

/** Pids of QEMU processes whose command line names `home`, ascending. */
export function qemuPids(home: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") continue; // exited while we looked
      throw err;
    }
    if (cmdline.includes("qemu-system") && cmdline.includes(home)) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}
