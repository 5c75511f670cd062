/**
 * @module daemon/images/lock
 * A lock file shared between processes: created with O_EXCL and holding the
 * owner's pid. A lock whose owner is dead is stale and taken over.
 */
import { openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { BackendError } from "../../api/errors.ts";

/** True when a process with this pid exists (EPERM counts as alive). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return false;
    if (code === "EPERM") return true;
    throw err;
  }
}

function readOwner(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8"), 10);
    return Number.isFinite(pid) ? pid : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Try once to take the lock; returns a release function or null when another live process holds it. */
export function tryLock(path: string): (() => void) | null {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const owner = readOwner(path);
    // An empty file is a lock being written right now; only a dead owner's lock is stale.
    if (owner !== undefined && owner !== process.pid && !alive(owner)) rmSync(path, { force: true });
    return null;
  }
  try {
    writeSync(fd, String(process.pid));
  } finally {
    closeSync(fd);
  }
  return () => rmSync(path, { force: true });
}

/**
 * Wait for the lock, polling; `done()` lets the caller stop waiting when the
 * holder's work already produced the result. Returns null when `done()` became true.
 */
export async function acquireLock(path: string, done: () => boolean, timeoutMs = 60 * 60_000, pollMs = 100): Promise<(() => void) | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return null;
    const release = tryLock(path);
    if (release) return release;
    if (Date.now() > deadline) throw new BackendError(`timed out after ${timeoutMs} ms waiting for lock ${path} (held by pid ${readOwner(path) ?? "?"})`, "another aegis process is building the same image; if none is running, delete the lock file");
    await Bun.sleep(pollMs);
  }
}
