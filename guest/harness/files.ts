/**
 * @module guest/harness/files
 * The `fs.*` requests: files of the guest as its processes see them. Paths
 * are inside the rootfs (`root`, or the initramfs without one); every
 * directory on the way is resolved within the rootfs (exec-path.ts), so a
 * symlink never leads the harness outside the user's filesystem. The last
 * component is resolved too for reads and writes, and kept for stat,
 * remove, rename and symlink (they act on a link itself, like lstat/unlink).
 * Errors carry the errno (`data.errno`) for the host to map.
 */
import { type Stats, chmodSync, closeSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, renameSync, rmSync, symlinkSync, utimesSync, writeSync } from "node:fs";
import { posix } from "node:path";
import { RpcError } from "../../src/api/jsonrpc.ts";
import { RpcErrorCode } from "../../src/api/schema/guest-wire.ts";
import { FS_LIST_MAX, type FileStat } from "../../src/api/schema/files.ts";
import { resolveInRoot } from "./exec-path.ts";

function fsError(err: unknown, path: string): RpcError {
  const code = (err as NodeJS.ErrnoException).code ?? "EIO";
  const what: Record<string, string> = { ENOENT: "no such file or directory", EEXIST: "already exists", ENOTDIR: "not a directory", EISDIR: "is a directory", ENOTEMPTY: "directory not empty", EACCES: "permission denied", EROFS: "read-only file system", ENOSPC: "no space left on device" };
  return new RpcError(RpcErrorCode.fsError, `${path}: ${what[code] ?? (err as Error).message}`, { errno: code });
}

function typeOf(st: Stats): FileStat["type"] {
  if (st.isSymbolicLink()) return "symlink";
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  return "other";
}

/** Serves `fs.*` for the rootfs the harness currently chroots processes into. */
export class GuestFiles {
  constructor(private readonly root: () => string | undefined) {}

  /** The harness path of `path`: parents resolved in the rootfs, the last component resolved too when `follow`. */
  private host(path: string, follow: boolean): string {
    const root = this.root() ?? "";
    const norm = posix.normalize(path);
    if (norm === "/") return root === "" ? "/" : root;
    const parent = resolveInRoot(root, posix.dirname(norm));
    if (parent === null) throw fsError(Object.assign(new Error("missing"), { code: "ENOENT" }), posix.dirname(norm));
    const base = posix.basename(norm);
    if (!follow) return `${parent}/${base}`;
    return resolveInRoot(root, norm) ?? `${parent}/${base}`;
  }

  private statOf(guestPath: string, host: string): FileStat {
    const st = lstatSync(host);
    const type = typeOf(st);
    return {
      path: guestPath,
      name: posix.basename(guestPath) || "/",
      type,
      size: type === "file" ? st.size : 0,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime_ms: st.mtimeMs,
      ...(type === "symlink" ? { link_target: readlinkSync(host) } : {}),
    };
  }

  private attempt<T>(path: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw err instanceof RpcError ? err : fsError(err, path);
    }
  }

  stat(p: { path: string }): FileStat {
    return this.attempt(p.path, () => this.statOf(p.path, this.host(p.path, false)));
  }

  list(p: { path: string }): { entries: FileStat[]; truncated: boolean } {
    return this.attempt(p.path, () => {
      const dir = this.host(p.path, true);
      const names = readdirSync(dir).sort();
      const entries = names.slice(0, FS_LIST_MAX).map((n) => this.statOf(posix.join(p.path, n), `${dir}/${n}`));
      return { entries, truncated: names.length > FS_LIST_MAX };
    });
  }

  read(p: { path: string; offset: number; length: number }): { data: string; eof: boolean } {
    return this.attempt(p.path, () => {
      const fd = openSync(this.host(p.path, true), "r");
      try {
        const buf = Buffer.alloc(p.length);
        const n = readSync(fd, buf, 0, p.length, p.offset);
        return { data: buf.subarray(0, n).toString("base64"), eof: n < p.length };
      } finally {
        closeSync(fd);
      }
    });
  }

  write(p: { path: string; offset: number; data: string; mode?: number }): { size: number } {
    return this.attempt(p.path, () => {
      const target = this.host(posix.dirname(p.path), true);
      mkdirSync(target, { recursive: true });
      const host = this.host(p.path, true);
      const fd = openSync(host, p.offset === 0 ? "w" : "r+", p.mode ?? 0o644);
      try {
        const bytes = Buffer.from(p.data, "base64");
        writeSync(fd, bytes, 0, bytes.length, p.offset);
        return { size: p.offset + bytes.length };
      } finally {
        closeSync(fd);
      }
    });
  }

  mkdir(p: { path: string; mode?: number }): { ok: true } {
    return this.attempt(p.path, () => {
      mkdirSync(this.host(p.path, true), { recursive: true, mode: p.mode ?? 0o755 });
      return { ok: true as const };
    });
  }

  remove(p: { path: string; recursive?: boolean }): { ok: true } {
    return this.attempt(p.path, () => {
      if (posix.normalize(p.path) === "/") throw fsError(Object.assign(new Error("refused"), { code: "EBUSY" }), "/");
      const host = this.host(p.path, false);
      lstatSync(host);
      rmSync(host, { recursive: p.recursive === true });
      return { ok: true as const };
    });
  }

  rename(p: { from: string; to: string }): { ok: true } {
    return this.attempt(p.from, () => {
      renameSync(this.host(p.from, false), this.host(p.to, false));
      return { ok: true as const };
    });
  }

  symlink(p: { path: string; target: string }): { ok: true } {
    return this.attempt(p.path, () => {
      symlinkSync(p.target, this.host(p.path, false));
      return { ok: true as const };
    });
  }

  /**
   * Make `path` (a directory or file of the rootfs, e.g. where the
   * containerd shim put a read-only OCI bind mount) read-only for the
   * guest's processes: bound onto itself and remounted read-only, so writes
   * fail with EROFS instead of landing in the overlay. Lasts until the VM
   * stops.
   */
  async readonly(p: { path: string }): Promise<{ ok: true }> {
    if (this.root() === undefined) throw new RpcError(RpcErrorCode.fsError, `${p.path}: no rootfs to make read-only`, { errno: "EINVAL" });
    const host = this.attempt(p.path, () => {
      const h = this.host(p.path, true);
      lstatSync(h);
      return h;
    });
    const { bindReadOnly } = await import("./libc.ts");
    this.attempt(p.path, () => bindReadOnly(host, host));
    return { ok: true };
  }

  setattr(p: { path: string; mode?: number; mtime_ms?: number }): { ok: true } {
    return this.attempt(p.path, () => {
      const host = this.host(p.path, false);
      const link = lstatSync(host).isSymbolicLink();
      if (p.mode !== undefined && !link) chmodSync(host, p.mode);
      if (p.mtime_ms !== undefined) {
        const t = new Date(p.mtime_ms);
        if (link) lutimesSync(host, t, t);
        else utimesSync(host, t, t);
      }
      return { ok: true as const };
    });
  }
}
