/**
 * @module control/port-claims
 * Who holds a TCP port, so that a listener that cannot bind can name the
 * other aegisd (and its AEGIS_HOME) instead of saying only "in use".
 *
 * Every aegisd listener binds exclusively (Bun.serve `reusePort: false`,
 * Bun.listen `exclusive: true`): with Bun's default SO_REUSEPORT on a
 * WebSocket-capable Bun.serve, a second daemon used to bind 127.0.0.1:8099
 * too and the kernel split connections between the two. Binding exclusively
 * makes the second one fail; this module only explains the failure.
 *
 * Choice: a claim file per port in one machine-wide directory,
 * `$AEGIS_PORT_CLAIMS_DIR` or `/tmp/aegis-ports` (mode 1777, like /tmp, so
 * daemons of every user and every AEGIS_HOME see each other). A claim is
 * `<host>_<port>.json` = `{ pid, home, what }`, written after a successful
 * bind (temp file + rename, so a reader never sees half a file) and removed
 * when the listener closes. A claim whose pid is dead is stale and ignored.
 * Probing an identity endpoint was rejected: `--expose` forwards are raw TCP
 * and would need a protocol of their own, and the router's paths belong to
 * the guests. The claims are advisory: they never decide whether a bind is
 * allowed (the kernel does), so a missing or unwritable directory only
 * makes the message less specific.
 */
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One port's claim. */
export interface PortClaim {
  pid: number;
  home: string;
  /** What listens there ("HTTP router", "--expose 8080:80 of instance web", ...). */
  what: string;
}

function claimsDir(env = process.env): string {
  return env.AEGIS_PORT_CLAIMS_DIR || "/tmp/aegis-ports";
}

function claimPath(host: string, port: number): string {
  return join(claimsDir(), `${host.replaceAll(/[^0-9A-Za-z.]/g, "_")}_${port}.json`);
}

/** The shared directory, created sticky and world-writable; undefined when it is not a plain directory. */
function ensureDir(): string | undefined {
  const dir = claimsDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o1777 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) return undefined;
    if (st.uid === process.getuid?.() && (st.mode & 0o7777) !== 0o1777) chmodSync(dir, 0o1777);
    return dir;
  } catch (err) {
    // Advisory only: a read-only /tmp must not stop a listener that did bind.
    if (["EACCES", "EPERM", "EROFS", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) return undefined;
    throw err;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Record that this process listens on host:port (best effort, see the module doc). */
export function claimPort(host: string, port: number, home: string, what: string): void {
  if (!ensureDir()) return;
  const path = claimPath(host, port);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ pid: process.pid, home, what } satisfies PortClaim), { mode: 0o644, flag: "wx" });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    // Another user's live claim in the sticky dir cannot be replaced; we did bind, so theirs is stale.
    if (["EACCES", "EPERM", "EEXIST"].includes((err as NodeJS.ErrnoException).code ?? "")) return;
    throw err;
  }
}

/** Remove this process's claim of host:port (a claim of another pid is left alone). */
export function releasePort(host: string, port: number): void {
  const claim = readClaim(host, port);
  if (claim?.pid === process.pid) rmSync(claimPath(host, port), { force: true });
}

/** The live claim of host:port by another process, if any. */
export function portHolder(host: string, port: number): PortClaim | undefined {
  const claim = readClaim(host, port);
  if (!claim || claim.pid === process.pid || !alive(claim.pid)) return undefined;
  return claim;
}

function readClaim(host: string, port: number): PortClaim | undefined {
  let text: string;
  try {
    text = readFileSync(claimPath(host, port), "utf8");
  } catch (err) {
    if (["ENOENT", "EACCES", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) return undefined;
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<PortClaim>;
    if (typeof v.pid !== "number" || typeof v.home !== "string" || typeof v.what !== "string") return undefined;
    return { pid: v.pid, home: v.home, what: v.what };
  } catch {
    return undefined; // a corrupt claim names nobody; the kernel already refused the bind
  }
}

/**
 * The sentence for a failed bind of host:port: names the other aegisd and its
 * AEGIS_HOME when a live claim says so, otherwise "another process".
 */
export function describePortInUse(host: string, port: number): string {
  const h = portHolder(host, port);
  if (h) return `${host}:${port} is in use by another aegisd (pid ${h.pid}, AEGIS_HOME=${h.home}, its ${h.what})`;
  return `${host}:${port} is in use by another process (or not bindable)`;
}
