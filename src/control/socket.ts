/**
 * @module control/socket
 * Unix-socket housekeeping (STYLE rule 22): the `sun_path` length limit, the
 * connect-probe that tells a live daemon from a stale socket file, and the
 * pid file.
 */
import { existsSync, readFileSync, unlinkSync } from "node:fs";

/** Largest socket path that fits `sun_path` everywhere we run (macOS: 104 bytes incl. NUL). */
export const MAX_SOCKET_PATH = 103;

/** Throw a clear error when the socket path is too long for the kernel. */
export function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new Error(
      `socket path ${path} is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH}. Set AEGIS_HOME to a shorter directory.`,
    );
  }
}

/** Whether a daemon answers on the socket. ENOENT/ECONNREFUSED mean "no"; other errors propagate. */
export async function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    const res = await fetch("http://aegis/v1/status", { unix: path, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "ENOENT" || code === "FailedToOpenSocket" || code === "ConnectionRefused") return false;
    if ((err as Error).name === "TimeoutError") return false;
    throw err;
  }
}

/** Remove a file if present; other errors propagate. */
export function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Read the pid file; null when absent or not a number. */
export function readPidFile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/**
 * Whether a process with this pid is alive (signal 0). A zombie counts as
 * dead: it has exited and only waits for its parent (or init, which may be
 * slow to reap) to collect it.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return false;
    if (code === "EPERM") return true;
    throw err;
  }
  return !isZombie(pid);
}

/** True when /proc shows the process in state Z (Linux only; false elsewhere). */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return !existsSync("/proc/self/stat") ? false : true;
    throw err;
  }
  // The state follows the parenthesised command name, which may itself contain ") ".
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
}
