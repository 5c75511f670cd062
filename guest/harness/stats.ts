/**
 * @module guest/harness/stats
 * The `stats` request: the guest's resource use from the guest kernel's own
 * /proc (never a binary of the user's rootfs): /proc/meminfo, the `cpu`
 * lines of /proc/stat (in USER_HZ ticks, 100 per second on every Linux
 * architecture we boot) and the user processes in /proc. A VM is one
 * container, so the machine's figures are the container's.
 *
 * Processes counted: every /proc/<pid> that is not a kernel thread (ppid 2,
 * or kthreadd itself) nor pid 1 (the guest init) nor the harness. Bounded:
 * at most {@link MAX_SCANNED} /proc entries are looked at.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { GuestStats } from "../../src/api/schema/stats.ts";

/** Microseconds per USER_HZ tick (USER_HZ is 100). */
const TICK_USEC = 10_000;
/** Most /proc entries one request scans. */
const MAX_SCANNED = 65_536;

/** Bytes of a `Name:   123 kB` line of /proc/meminfo (0 when absent). */
export function meminfoBytes(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** CPU times from /proc/stat text: user (user+nice), system (system+irq+softirq), busy total, per CPU. */
export function cpuTimes(text: string): Pick<GuestStats, "cpu_user_usec" | "cpu_system_usec" | "cpu_usage_usec" | "cpu_per_cpu_usec"> {
  const busy = (f: number[]) => (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  let all: number[] = [];
  const perCpu: number[] = [];
  for (const line of text.split("\n")) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (m[1] === "") all = f;
    else if (perCpu.length < 1024) perCpu.push(busy(f) * TICK_USEC);
  }
  return {
    cpu_user_usec: ((all[0] ?? 0) + (all[1] ?? 0)) * TICK_USEC,
    cpu_system_usec: ((all[2] ?? 0) + (all[5] ?? 0) + (all[6] ?? 0)) * TICK_USEC,
    cpu_usage_usec: busy(all) * TICK_USEC,
    cpu_per_cpu_usec: perCpu,
  };
}

/** The parent pid in a /proc/<pid>/stat line (the comm may hold spaces and parentheses). */
export function statPpid(text: string): number {
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return Number(rest[1]);
}

function userProcesses(): number {
  let n = 0;
  const names = readdirSync("/proc").slice(0, MAX_SCANNED);
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === 1 || pid === 2 || pid === process.pid) continue;
    try {
      if (statPpid(readFileSync(`/proc/${name}/stat`, "utf8")) !== 2) n++;
    } catch {
      // Gone between readdir and read: not counted.
    }
  }
  return n;
}

/** One sample. */
export function guestStats(uptimeMs: number): GuestStats {
  const mem = readFileSync("/proc/meminfo", "utf8");
  return {
    mem_total_bytes: meminfoBytes(mem, "MemTotal"),
    mem_available_bytes: meminfoBytes(mem, "MemAvailable"),
    mem_cached_bytes: meminfoBytes(mem, "Cached"),
    swap_total_bytes: meminfoBytes(mem, "SwapTotal"),
    swap_free_bytes: meminfoBytes(mem, "SwapFree"),
    ...cpuTimes(readFileSync("/proc/stat", "utf8")),
    processes: userProcesses(),
    uptime_ms: uptimeMs,
  };
}
