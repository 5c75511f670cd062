/**
 * @module daemon/e2b/filesystem
 * envd's `filesystem.Filesystem` service over the guest's `fs.*` requests
 * (daemon/instances/files.ts wakes the sandbox first): Stat, ListDir with a
 * depth, MakeDir, Move, Remove, and directory watches, streamed (WatchDir) or
 * polled (CreateWatcher / GetWatcherEvents / RemoveWatcher).
 *
 * Relative paths are resolved against the sandbox's working directory (the
 * image's WorkingDir, else `/`); E2B resolves them against the user's home,
 * which an arbitrary image may not have.
 *
 * Bounds: a recursive ListDir stops at {@link LIST_MAX_ENTRIES}; a polled
 * watcher keeps at most {@link WATCHER_QUEUE_MAX} unread events (older ones
 * are dropped), and a sandbox has at most the guest's FS_WATCH_MAX watches.
 */
import { posix } from "node:path";
import type { FileStat } from "../../api/schema/files.ts";
import type { ControlChannel } from "../../vmm/control-channel.ts";
import type { InstanceFiles } from "../instances/files.ts";
import type { InstancesService } from "../instances/service.ts";
import { ConnectError } from "./connect.ts";
import { entryInfo } from "./entry-info.ts";

/** Most entries one ListDir returns. */
export const LIST_MAX_ENTRIES = 10_000;
/** Most unread events a polled watcher keeps. */
export const WATCHER_QUEUE_MAX = 10_000;

const EVENT_TYPES = { create: "EVENT_TYPE_CREATE", write: "EVENT_TYPE_WRITE", remove: "EVENT_TYPE_REMOVE", rename: "EVENT_TYPE_RENAME", chmod: "EVENT_TYPE_CHMOD" } as const;

/** A filesystem event in envd's JSON mapping. */
export type FsEventJson = { name: string; type: string; entry?: Record<string, unknown> };

interface Polled {
  sandbox: string;
  stop: () => Promise<void>;
  events: FsEventJson[];
}

let watchCounter = 0;

/** Filesystem calls of sandboxes. */
export class SandboxFilesystem {
  private readonly polled = new Map<string, Polled>();

  constructor(
    private readonly instances: InstancesService,
    private readonly files: InstanceFiles,
  ) {}

  /** An absolute guest path for `path` (see the module notes). */
  async resolve(id: string, path: string): Promise<string> {
    if (path.startsWith("/")) return posix.normalize(path);
    const base = (await this.instances.commandEnvironment(id)).cwd ?? "/";
    return posix.resolve(base, path);
  }

  async stat(id: string, path: string): Promise<Record<string, unknown>> {
    return { entry: entryInfo(await this.files.stat(id, await this.resolve(id, path))) };
  }

  async listDir(id: string, path: string, depth: number): Promise<Record<string, unknown>> {
    const root = await this.resolve(id, path);
    const top = await this.files.stat(id, root);
    if (top.type !== "dir") throw new ConnectError("invalid_argument", `path ${root} is not a directory`);
    const out: FileStat[] = [];
    const walk = async (dir: string, level: number): Promise<void> => {
      const { entries } = await this.files.list(id, dir);
      for (const e of entries) {
        if (out.length >= LIST_MAX_ENTRIES) return;
        out.push(e);
        if (e.type === "dir" && level < depth) await walk(e.path, level + 1);
      }
    };
    await walk(root, 1);
    return { entries: out.map(entryInfo) };
  }

  async makeDir(id: string, path: string): Promise<Record<string, unknown>> {
    const p = await this.resolve(id, path);
    const exists = await this.files.stat(id, p).then(
      () => true,
      (err: unknown) => {
        if ((err as { code?: string }).code === "not_found") return false;
        throw err;
      },
    );
    if (exists) throw new ConnectError("already_exists", `directory ${p} already exists`);
    await this.files.with(id, (ch) => ch.call("fs.mkdir", { path: p }));
    return { entry: entryInfo(await this.files.stat(id, p)) };
  }

  async move(id: string, source: string, destination: string): Promise<Record<string, unknown>> {
    const from = await this.resolve(id, source);
    const to = await this.resolve(id, destination);
    await this.files.with(id, async (ch) => {
      await ch.call("fs.mkdir", { path: posix.dirname(to) });
      await ch.call("fs.rename", { from, to });
    });
    return { entry: entryInfo(await this.files.stat(id, to)) };
  }

  async remove(id: string, path: string): Promise<Record<string, unknown>> {
    const p = await this.resolve(id, path);
    await this.files.with(id, (ch) => ch.call("fs.remove", { path: p, recursive: true }));
    return {};
  }

  /**
   * Watch a directory: `onEvent` gets every event until the returned stop
   * function runs; `onLost` when the sandbox's VM goes away first.
   */
  async watch(id: string, req: { path: string; recursive?: boolean; includeEntry?: boolean }, onEvent: (e: FsEventJson) => void, onLost: (err: Error) => void): Promise<() => Promise<void>> {
    const dir = await this.resolve(id, req.path);
    const st = await this.files.stat(id, dir);
    if (st.type !== "dir") throw new ConnectError("invalid_argument", `path ${dir} is not a directory`);
    const watchId = `w${Date.now().toString(36)}-${(watchCounter++).toString(36)}`;
    const rt = await this.instances.ensureRunning(id);
    const ch: ControlChannel | undefined = rt.vm?.channel;
    if (!ch) throw new ConnectError("unavailable", `sandbox ${id} has no running VM`);
    const offEvent = ch.onNotification("fs.event", (p) => {
      if (p.id !== watchId) return;
      const ev: FsEventJson = { name: p.name, type: EVENT_TYPES[p.type] };
      if (req.includeEntry && p.type !== "remove") {
        // The entry is looked up after the fact: it may be gone again, then the event goes without it.
        this.files.stat(id, posix.join(dir, p.name)).then(
          (s) => onEvent({ ...ev, entry: entryInfo(s) }),
          () => onEvent(ev),
        );
      } else onEvent(ev);
    });
    const offClose = ch.onClose((reason) => {
      offEvent();
      onLost(new ConnectError("unavailable", `the sandbox's VM went away: ${reason}`));
    });
    try {
      await ch.call("fs.watch", { id: watchId, path: dir, recursive: req.recursive === true });
    } catch (err) {
      offEvent();
      offClose();
      throw err;
    }
    return async () => {
      offEvent();
      offClose();
      if (ch.connected) await ch.call("fs.unwatch", { id: watchId });
    };
  }

  async createWatcher(id: string, req: { path: string; recursive?: boolean; includeEntry?: boolean }): Promise<Record<string, unknown>> {
    const watcherId = `watcher-${Date.now().toString(36)}-${(watchCounter++).toString(36)}`;
    const polled: Polled = { sandbox: id, events: [], stop: async () => undefined };
    polled.stop = await this.watch(
      id,
      req,
      (e) => {
        polled.events.push(e);
        if (polled.events.length > WATCHER_QUEUE_MAX) polled.events.shift();
      },
      () => this.polled.delete(watcherId),
    );
    this.polled.set(watcherId, polled);
    return { watcherId };
  }

  private watcher(id: string, watcherId: string): Polled {
    const w = this.polled.get(watcherId);
    if (!w || w.sandbox !== id) throw new ConnectError("not_found", `watcher ${watcherId} not found`);
    return w;
  }

  getWatcherEvents(id: string, watcherId: string): Record<string, unknown> {
    const w = this.watcher(id, watcherId);
    const events = w.events;
    w.events = [];
    return { events };
  }

  async removeWatcher(id: string, watcherId: string): Promise<Record<string, unknown>> {
    const w = this.watcher(id, watcherId);
    this.polled.delete(watcherId);
    await w.stop();
    return {};
  }

  /** Drop a killed sandbox's polled watchers. */
  forget(id: string): void {
    for (const [k, w] of this.polled) if (w.sandbox === id) this.polled.delete(k);
  }
}
