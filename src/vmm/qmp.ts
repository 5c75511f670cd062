/**
 * @module vmm/qmp
 * A small QMP (QEMU Machine Protocol) client over QEMU's unix socket
 * (`-qmp unix:PATH,server=on,wait=off`): greeting, `qmp_capabilities`, then
 * one command at a time with ids. Asynchronous events are ignored. Used for
 * pause (`stop`), resume (`cont`), `query-status`, and memory snapshots
 * (`migrate` + `query-migrate`).
 */
import type { Socket } from "bun";
import { LineSplitter } from "../api/jsonrpc.ts";

/** A QMP error reply. */
export class QmpError extends Error {
  override name = "QmpError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

interface Waiter {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Connected QMP session. Create with `QmpClient.connect(path)`. */
export class QmpClient {
  private socket?: Socket<undefined>;
  private readonly splitter = new LineSplitter();
  private readonly waiters = new Map<string, Waiter>();
  private greeting?: () => void;
  private nextId = 1;
  private closedReason?: string;

  private constructor(readonly path: string) {}

  /** Connect (retrying while QEMU creates the socket, up to `timeoutMs`) and negotiate capabilities. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const c = new QmpClient(path);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      c.closedReason = undefined;
      const greeted = new Promise<void>((r) => {
        c.greeting = r;
      });
      try {
        c.socket = await Bun.connect<undefined>({
          unix: path,
          socket: {
            data: (_s, d) => c.onData(d),
            close: () => c.fail("QMP connection closed"),
            error: (_s, e) => c.fail(`QMP socket error: ${e.message}`),
          },
        });
        await greeted;
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== "ENOENT" && code !== "ECONNREFUSED") || Date.now() > deadline) throw err;
        // A restore waits on this (QEMU start -> QMP): polled often, a connect attempt is cheap.
        await Bun.sleep(5);
      }
    }
    await c.execute("qmp_capabilities");
    return c;
  }

  /** Run one QMP command and return its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedReason || !this.socket) return Promise.reject(new Error(`QMP ${command}: ${this.closedReason ?? "not connected"}`));
    const id = `q${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket!.write(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`);
    });
  }

  /** `query-status` -> the run state (`running`, `paused`, `inmigrate`, `postmigrate`, ...). */
  async status(): Promise<string> {
    const r = await this.execute<{ status: string }>("query-status");
    return r.status;
  }

  /** Pause the vCPUs. */
  stop(): Promise<unknown> {
    return this.execute("stop");
  }

  /** Resume the vCPUs. */
  cont(): Promise<unknown> {
    return this.execute("cont");
  }

  /** Start a migration to `uri` (e.g. `exec:zstd -1 > file`). */
  migrate(uri: string): Promise<unknown> {
    return this.execute("migrate", { uri });
  }

  /** Turn one migration capability on or off (both ends of a migration must agree). */
  setMigrationCapability(capability: string, state: boolean): Promise<unknown> {
    return this.execute("migrate-set-capabilities", { capabilities: [{ capability, state }] });
  }

  /** Start loading an incoming migration on a VM spawned with `-incoming defer`. */
  migrateIncoming(uri: string): Promise<unknown> {
    return this.execute("migrate-incoming", { uri });
  }

  /** `query-migrate` -> status and error description. */
  queryMigrate(): Promise<{ status?: string; "error-desc"?: string }> {
    return this.execute("query-migrate");
  }

  /** Close the connection. */
  close(): void {
    this.fail("QMP client closed");
    this.socket?.end();
  }

  private fail(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const w of this.waiters.values()) w.reject(new Error(`QMP ${w.command}: ${reason}`));
    this.waiters.clear();
  }

  private onData(data: Uint8Array): void {
    for (const line of this.splitter.push(data)) {
      const msg = JSON.parse(line) as { QMP?: unknown; id?: string; return?: unknown; error?: { class: string; desc: string }; event?: string };
      if (msg.QMP) {
        this.greeting?.();
        continue;
      }
      if (msg.event || msg.id === undefined) continue;
      const w = this.waiters.get(msg.id);
      if (!w) continue;
      this.waiters.delete(msg.id);
      if (msg.error) w.reject(new QmpError(w.command, msg.error.class, msg.error.desc));
      else w.resolve(msg.return);
    }
  }
}
