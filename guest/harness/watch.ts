/**
 * @module guest/harness/watch
 * `fs.watch` / `fs.unwatch`: directory watches inside the rootfs for the
 * host (E2B's WatchDir). Each watch is Bun's fs.watch (inotify) on the
 * directory as resolved within the rootfs (exec-path.ts), so a symlink never
 * leads outside it. inotify reports "rename" (something appeared or went) and
 * "change" (contents written); a "rename" is told apart by looking: the name
 * exists now (create) or not (remove). At most FS_WATCH_MAX watches exist at
 * once, and each reports at most FS_WATCH_EVENTS_PER_S events a second (the
 * excess is counted into the next event's `dropped`), so a guest writing a
 * million files cannot flood the control channel.
 */
import { type FSWatcher, existsSync, statSync, watch } from "node:fs";
import { posix } from "node:path";
import { RpcError } from "../../src/api/jsonrpc.ts";
import { RpcErrorCode } from "../../src/api/schema/guest-wire.ts";
import { FS_WATCH_EVENTS_PER_S, FS_WATCH_MAX } from "../../src/api/schema/files.ts";
import { resolveInRoot } from "./exec-path.ts";

type EventType = "create" | "write" | "remove" | "rename" | "chmod";

interface Watch {
  watcher: FSWatcher;
  windowStart: number;
  inWindow: number;
  dropped: number;
}

/** The harness's directory watches. */
export class GuestWatches {
  private readonly watches = new Map<string, Watch>();

  constructor(
    private readonly root: () => string | undefined,
    private readonly emit: (p: { id: string; name: string; type: EventType; dropped?: number }) => void,
  ) {}

  watch(p: { id: string; path: string; recursive?: boolean }): { ok: true } {
    if (this.watches.has(p.id)) throw new RpcError(RpcErrorCode.duplicateId, `watch ${p.id} already exists`);
    if (this.watches.size >= FS_WATCH_MAX) throw new RpcError(RpcErrorCode.fsError, `${p.path}: too many watches (at most ${FS_WATCH_MAX})`, { errno: "EMFILE" });
    const host = resolveInRoot(this.root() ?? "", posix.normalize(p.path));
    if (host === null || !existsSync(host)) throw new RpcError(RpcErrorCode.fsError, `${p.path}: no such file or directory`, { errno: "ENOENT" });
    if (!statSync(host).isDirectory()) throw new RpcError(RpcErrorCode.fsError, `${p.path}: not a directory`, { errno: "ENOTDIR" });
    const w: Watch = { watcher: null as unknown as FSWatcher, windowStart: Date.now(), inWindow: 0, dropped: 0 };
    w.watcher = watch(host, { recursive: p.recursive === true }, (kind, filename) => {
      if (filename === null) return;
      const name = String(filename);
      const type: EventType = kind === "change" ? "write" : existsSync(posix.join(host, name)) ? "create" : "remove";
      const now = Date.now();
      if (now - w.windowStart >= 1000) {
        w.windowStart = now;
        w.inWindow = 0;
      }
      if (++w.inWindow > FS_WATCH_EVENTS_PER_S) {
        w.dropped++;
        return;
      }
      const dropped = w.dropped;
      w.dropped = 0;
      this.emit({ id: p.id, name, type, ...(dropped > 0 ? { dropped } : {}) });
    });
    // The directory going away ends the watch; the host sees no more events.
    w.watcher.on("error", () => this.unwatch({ id: p.id }));
    this.watches.set(p.id, w);
    return { ok: true };
  }

  unwatch(p: { id: string }): { ok: true } {
    const w = this.watches.get(p.id);
    if (w) {
      this.watches.delete(p.id);
      w.watcher.close();
    }
    return { ok: true };
  }
}
