/**
 * @module guest/harness/reaper
 * Zombie reaping for PID 1. Orphaned grandchildren are re-parented to the
 * harness and must be waited for, but a blanket `waitpid(-1)` would steal
 * exit statuses from Bun's own child tracking. So we scan /proc for zombies
 * whose parent is us and that Bun does not own, and reap exactly those pids.
 * The harness scans only when `waitid(WNOWAIT)` says some child has exited
 * (libc.ts hasExitedChild): a scan reads every /proc/<pid>/stat and took
 * 40-280 ms under TCG on a loaded host (guest clock), once a second in
 * every VM; the peek is one syscall.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Parse `/proc/<pid>/stat` into state and parent pid (the comm field may contain spaces and parens). */
export function parseStat(text: string): { state: string; ppid: number } {
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return { state: rest[0] ?? "?", ppid: Number(rest[1]) };
}

/** Reap zombie orphans of this process that are not in `owned`; returns how many were reaped. */
export function reapOrphans(owned: ReadonlySet<number>, reap: (pid: number) => boolean): number {
  let n = 0;
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || owned.has(pid)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch (err) {
      // The process vanished between readdir and read.
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") continue;
      throw err;
    }
    const st = parseStat(text);
    if (st.state === "Z" && st.ppid === process.pid && reap(pid)) n++;
  }
  return n;
}
