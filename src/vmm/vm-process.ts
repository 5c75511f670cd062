/**
 * @module vmm/vm-process
 * A VM's host process (QEMU, virtiofsd) as the backend sees it, whether this
 * daemon spawned it or adopted it from a previous one (live restore): its
 * pid, whether it is gone, and a promise of its exit.
 *
 * An adopted process is not our child, so there is no wait status: we poll
 * /proc every {@link ADOPTED_POLL_MS} and report exit code -1 (unknown; the
 * guest's own `exit` notification is what carries a task's code). A zombie
 * (state Z, awaiting a reaper that is not us) counts as gone.
 *
 * Identity: a pid alone can be reused, so a recorded process is ours only
 * when its start time (/proc/PID/stat field 22, clock ticks since boot) is
 * the one recorded when it was spawned.
 */
import { readFileSync } from "node:fs";

/** How often an adopted process's liveness is checked. */
export const ADOPTED_POLL_MS = 200;

/** A VM's host process. */
export interface VmProcess {
  readonly pid: number;
  /** True once the process has exited. */
  readonly gone: boolean;
  /** Resolves with its exit code (-1 when unknown: an adopted process). */
  readonly exited: Promise<number>;
}

/** /proc/PID/stat fields after the command name: state (index 0) ... starttime (index 19). */
function statFields(pid: number): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") return null;
    throw err;
  }
  // The command name is in parentheses and may itself contain spaces or parentheses.
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** The start time of `pid` (clock ticks since boot, as text), or null when it does not run (gone or a zombie). */
export function processStartTime(pid: number): string | null {
  const f = statFields(pid);
  if (!f || f[0] === "Z" || f[0] === "X") return null;
  return f[19] ?? null;
}

/** True when `pid` runs and started at `startTime`: the process recorded then, not a reuse of its pid. */
export function sameProcess(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}

/** A process this daemon spawned. */
export function spawnedProcess(proc: Bun.Subprocess): VmProcess {
  return {
    pid: proc.pid,
    get gone() {
      return proc.exitCode !== null || proc.signalCode !== null;
    },
    exited: proc.exited,
  };
}

/** A process a previous daemon spawned, found alive with the recorded start time. */
export function adoptedProcess(pid: number, startTime: string): VmProcess {
  let gone = false;
  const exited = new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      if (sameProcess(pid, startTime)) return;
      gone = true;
      clearInterval(timer);
      resolve(-1);
    }, ADOPTED_POLL_MS);
  });
  return {
    pid,
    get gone() {
      return gone || !sameProcess(pid, startTime);
    },
    exited,
  };
}
