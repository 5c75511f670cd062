/**
 * @module daemon/kits/stale
 * Finding the kit daemons a previous aegisd of this AEGIS_HOME left running
 * (it was killed with SIGKILL, so it could not stop them).
 *
 * The pid file alone cannot be trusted for this: aegisd learns a daemon's
 * pid only after spawning it, so an aegisd killed between the spawn and the
 * write leaves a daemon nobody knows, and a restarted daemon (crash, then
 * backoff) has a pid the file may not hold yet. So every kit daemon is
 * spawned with a marker in its environment, `AEGIS_KIT_DAEMON=<name>`,
 * beside `AEGIS_HOME`, and a starting aegisd looks for processes carrying
 * both (its own AEGIS_HOME) in `/proc/<pid>/environ`: the kernel fixes that
 * at exec, it is readable only for our own user's processes, and a reused
 * pid of an unrelated process does not carry it. Where /proc is missing
 * (not Linux) the pid file, checked against the process's argv, is all there
 * is. {@link childEnv} never passes the marker on, so an aegisd or CLI a
 * daemon happens to start is not mistaken for the daemon.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/** Environment variable naming, inside a kit daemon, which daemon it is. */
export const KIT_DAEMON_ENV = "AEGIS_KIT_DAEMON";

/** A process that is one of this AEGIS_HOME's kit daemons. */
export interface StaleDaemon {
  name: string;
  pid: number;
}

/**
 * Whether `pid` still runs: not gone and not a zombie (a daemon the killed
 * aegisd left behind is reparented, and its new parent may reap it late).
 */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Whether kit daemons can be found by their environment here (Linux /proc). */
export function canScanEnvironments(): boolean {
  return existsSync("/proc/self/environ");
}

/** The kit daemon `environ` (NUL-separated) describes for `home`, or null when it is not one of that home's. */
export function kitDaemonOf(environ: string, home: string): string | null {
  let name: string | null = null;
  let theirs: string | null = null;
  for (const v of environ.split("\0")) {
    if (v.startsWith(`${KIT_DAEMON_ENV}=`)) name = v.slice(KIT_DAEMON_ENV.length + 1);
    else if (v.startsWith("AEGIS_HOME=")) theirs = v.slice("AEGIS_HOME=".length);
  }
  if (!name || theirs === null || resolve(theirs) !== resolve(home)) return null;
  return name;
}

/** Every live process (but this one) carrying the kit daemon marker for `home`. */
export function scanKitDaemons(home: string, procDir = "/proc"): StaleDaemon[] {
  const found: StaleDaemon[] = [];
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`${procDir}/${entry}/environ`, "latin1");
    } catch {
      continue; // gone meanwhile, or another user's (EACCES): not ours either way
    }
    const name = kitDaemonOf(environ, home);
    if (name && running(pid)) found.push({ name, pid });
  }
  return found;
}

/** The pid file's entries, tolerating a missing or damaged file (an older aegisd could be killed mid-write). */
export function readPidFile(path: string): Record<string, number> {
  if (!existsSync(path)) return {};
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (!parsed || typeof parsed !== "object") return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => Number.isInteger(e[1]) && (e[1] as number) > 0));
  } catch {
    return {};
  }
}
