/**
 * @module control/daemon-process
 * Starting and stopping aegisd from the CLI (`aegis up` / `aegis down`): the
 * process side of the daemon's lifecycle, robust to stale pid files, stale
 * sockets and reused pids.
 */
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { binDir, isCompiled, selfCommand, type StatePaths } from "../paths.ts";
import { lastLines } from "./file-ring.ts";
import { ensureStateDirs } from "./state-dirs.ts";
import { processAlive, probeSocket, readPidFile, unlinkIfExists } from "./socket.ts";

/** How long `aegis up` waits for the pid file (spec: up to 2 s). */
export const START_WAIT_MS = 2000;
/** How long `aegis down` waits after SIGTERM (spec: up to 5 s). */
export const STOP_WAIT_MS = 5000;

/** Environment for child processes: ours minus variables that would change how Bun runs the binary. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // AEGIS_KIT_DAEMON marks a kit daemon (daemon/kits/stale.ts); never inherited, so whatever a daemon starts is not taken for it.
    if (v !== undefined && k !== "BUN_BE_BUN" && k !== "BUN_OPTIONS" && k !== "AEGIS_KIT_DAEMON") env[k] = v;
  }
  return { ...env, ...extra };
}

/** True when `pid` is alive and (where /proc exists) runs an aegis binary, so a reused pid is not mistaken for ours. */
export function isDaemonProcess(pid: number): boolean {
  if (!processAlive(pid)) return false;
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync("/proc/self/cmdline")) return true;
  try {
    const args = readFileSync(cmdline, "utf8").split("\0");
    return args.some((a) => a.includes("aegis"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** The live daemon's pid, or null (stale pid files do not count). */
export function runningDaemonPid(paths: StatePaths): number | null {
  const pid = readPidFile(paths.pidFile);
  return pid !== null && isDaemonProcess(pid) ? pid : null;
}

/** The command that starts aegisd: the `aegisd` link beside `aegis`, else this binary in the daemon role. */
export function daemonCommand(): string[] {
  const beside = join(binDir, "aegisd");
  return isCompiled && existsSync(beside) ? [beside] : selfCommand("__daemon");
}

function tailLines(path: string, n: number): string {
  return lastLines(path, n).join("\n");
}

/** Start aegisd detached. Returns its pid and whether it was already running. */
export async function startDaemon(paths: StatePaths, opts: { noDaemons?: boolean } = {}): Promise<{ pid: number; already: boolean }> {
  const existing = runningDaemonPid(paths);
  if (existing !== null && (await probeSocket(paths.socket))) return { pid: existing, already: true };
  ensureStateDirs(paths);
  if (existing === null) unlinkIfExists(paths.pidFile);
  const logFd = openSync(paths.daemonLog, "a", 0o600);
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(daemonCommand(), {
      stdio: ["ignore", logFd, logFd],
      detached: true,
      // A daemon holds no caller's directory (a shim starts it inside a bundle that containerd removes).
      cwd: "/",
      env: childEnv({ AEGIS_HOME: paths.home, ...(opts.noDaemons ? { AEGIS_NO_DAEMONS: "1" } : {}) }),
    });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const deadline = Date.now() + START_WAIT_MS;
  while (Date.now() < deadline) {
    if (readPidFile(paths.pidFile) === proc.pid) return { pid: proc.pid, already: false };
    if (proc.exitCode !== null) break;
    await Bun.sleep(20);
  }
  if (proc.exitCode === null && readPidFile(paths.pidFile) === proc.pid) return { pid: proc.pid, already: false };
  const tail = tailLines(paths.daemonLog, 5);
  throw new Error(
    proc.exitCode !== null
      ? `aegisd exited with code ${proc.exitCode} during start-up${tail ? `:\n${tail}` : ""}`
      : `aegisd did not write ${paths.pidFile} within ${START_WAIT_MS / 1000} s; see ${paths.daemonLog}`,
  );
}

/**
 * Stop aegisd and wait up to 5 s. By default its VMs stop too (SIGINT);
 * with `keepVms` they keep running for the next aegisd to re-adopt
 * (SIGTERM, what a service manager sends during an upgrade). Returns the
 * pid stopped, or null when it was not running.
 */
export async function stopDaemon(paths: StatePaths, onStopping?: (pid: number) => void, opts: { keepVms?: boolean } = {}): Promise<number | null> {
  const pid = runningDaemonPid(paths);
  if (pid === null) {
    // Leave no stale state behind for the next `aegis up`.
    unlinkIfExists(paths.pidFile);
    if (!(await probeSocket(paths.socket))) unlinkIfExists(paths.socket);
    return null;
  }
  onStopping?.(pid);
  process.kill(pid, opts.keepVms ? "SIGTERM" : "SIGINT");
  const deadline = Date.now() + STOP_WAIT_MS;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return pid;
    await Bun.sleep(25);
  }
  throw new Error(`aegisd (pid ${pid}) did not exit within ${STOP_WAIT_MS / 1000} s of SIGTERM; see ${paths.daemonLog}`);
}
