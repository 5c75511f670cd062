/**
 * @module vmm/control-channel
 * The host end of the guest control channel (JSON-RPC 2.0 over NDJSON, see
 * api/schema/control.ts). The host LISTENS on a unix socket before QEMU is
 * spawned and QEMU's virtio-serial chardev connects to it as a client: the
 * guest's first write then blocks until we are there, so `ready` is never
 * lost, and after a snapshot restore the new QEMU simply connects again.
 *
 * One peer at a time: a new connection replaces the previous one. Writes
 * made while no peer is connected are buffered and flushed on connect.
 * When the peer disconnects, every pending call is rejected.
 *
 * The guest may also send requests (`mcp.*`, see {@link GuestRequests}): a
 * handler registered with `onRequest` answers each with its result, or with
 * a JSON-RPC error (an {@link RpcError}'s code, message and data; anything
 * else thrown is an internal error). Params are validated first; a method
 * without a handler is `methodNotFound`.
 *
 * Bounds (every guest is hostile: root in the VM can write anything here):
 * - Lines: at most {@link GUEST_LINE_MAX_BYTES} (8 MiB). The largest
 *   legitimate lines are an `fs.list` answer (up to FS_LIST_MAX = 10,000
 *   entries with names of up to 255 bytes: ~4 MiB), a `tether.frame`
 *   notification (the frame is capped at 1 MiB of JSON, api/schema/tether.ts
 *   `MAX_FRAME_BYTES`) and an `fs.read` chunk (256 KiB as base64); an
 *   `output` chunk is 32 KiB as base64 and `mcp.*` requests are small. A
 *   longer line is dropped without being buffered (LineSplitter), the channel
 *   resynchronises at the next newline and the VM keeps running: dropping
 *   costs nothing, and stopping the VM would not protect anything more.
 * - Rates, per channel (one channel per VM boot of an instance): guest
 *   requests {@link REQUEST_RATE}/s (burst {@link REQUEST_BURST}); a
 *   request over the limit is answered `rate_limited` (-32029) without
 *   running its handler. Notifications other than `output`
 *   {@link NOTIFICATION_RATE}/s (burst {@link NOTIFICATION_BURST}); over the
 *   limit they are dropped. `output` (process output) is never limited or
 *   dropped: it is bounded where it is kept, by the log store's rotation,
 *   so an `aegis run` printing as fast as it can stays complete.
 * - Replay (live restore): `output`, `exit` and `tether.frame` carry a
 *   `seq` (api/schema/control.ts). A seq at or below the last one handled is
 *   a duplicate and dropped; while a {@link ControlChannel.resume} is in
 *   flight seq'd notifications are ignored (they are in its answer). After
 *   each handled seq the channel records it in its seq file (`seqFile`, one
 *   pwrite, so a daemon that is killed right after knows where it was) and
 *   acknowledges it to the guest (`ack`, batched every {@link ACK_DELAY_MS}).
 *   The window between a handler's own durable write (the log store's
 *   append) and the seq file's is a few microseconds of synchronous code: a
 *   SIGKILL landing exactly there replays that one notification.
 * - Complaints (over-long, unparsable, invalid, rate-limited input) go to
 *   aegisd's log through a {@link RepeatReporter}: the first of each kind
 *   whole (guest text clipped and escaped), then one summary a minute.
 */
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import type { Socket, UnixSocketListener } from "bun";
import {
  ControlNotifications,
  ControlRequests,
  MAX_REPLAY_ENTRIES,
  type ControlNotificationMethod,
  type ControlNotificationParams,
  type ControlRequestMethod,
  type ControlRequestParams,
  type ControlRequestResult,
} from "../api/schema/control.ts";
import { GuestRequests, type GuestRequestMethod } from "../api/schema/mcp.ts";
import type { z } from "zod";
import { basename, dirname } from "node:path";
import { clip } from "../api/untrusted-text.ts";
import { RepeatReporter, type ReportSink, TokenBucket } from "./guest-input.ts";
import { errorResponse, isParseFailure, LineSplitter, notification, parseMessage, request, response, RpcError, type RpcMessage } from "../api/jsonrpc.ts";

/** Thrown to pending and new calls once the channel is closed or the peer went away. */
export class ChannelClosedError extends Error {
  override name = "ChannelClosedError";
}

/** Thrown when a call gets no answer in time. */
export class ChannelTimeoutError extends Error {
  override name = "ChannelTimeoutError";
}

/** Longest line accepted from the guest (see the module docs for why). */
export const GUEST_LINE_MAX_BYTES = 8 * 1024 * 1024;
/** Guest -> host requests per second, per channel (sustained). */
export const REQUEST_RATE = 50;
/** Guest -> host requests in a burst. */
export const REQUEST_BURST = 200;
/** Guest notifications other than `output` per second, per channel (sustained; an agent streams a few dozen deltas a second). */
export const NOTIFICATION_RATE = 500;
/** Guest notifications other than `output` in a burst. */
export const NOTIFICATION_BURST = 2000;
/** JSON-RPC error code of a request refused by the rate limit. */
export const RATE_LIMITED_CODE = -32029;
/** How long handled seqs wait before one `ack` acknowledges them all. */
export const ACK_DELAY_MS = 20;
/** Width of the seq file's one record (padded, so every pwrite replaces the whole value). */
const SEQ_RECORD_BYTES = 20;

/** The last seq a channel recorded in `seqFile`, 0 when there is none. */
export function readSeqFile(seqFile: string): number {
  if (!existsSync(seqFile)) return 0;
  const n = Number(readFileSync(seqFile, "utf8").trim());
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** Messages waiting for a guest that does not read (~150 B per refusal) beyond which refusals are no longer answered (the guest caller then times out): the refusals of a guest that writes and never reads cannot grow aegisd. */
const MAX_QUEUED_REFUSALS = 16_384;

/** aegisd's stderr is its log file: complaints are written as log lines (the same shape as daemon/log.ts). */
const stderrSink: ReportSink = (msg, fields) => {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: "warn", msg, ...fields })}\n`);
};

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

type AnyHandler = (params: any) => void;

/** Answers one guest -> host request; throw an {@link RpcError} to refuse it. */
export type GuestRequestHandler<M extends GuestRequestMethod> = (params: z.output<(typeof GuestRequests)[M]["params"]>) => Promise<unknown> | unknown;

/** Host side of the control channel. Create with `ControlChannel.listen(path)`. */
export class ControlChannel {
  private listener?: UnixSocketListener<undefined>;
  private socket?: Socket<undefined>;
  private outbox: Uint8Array[] = [];
  private readonly splitter: LineSplitter;
  private readonly reporter: RepeatReporter;
  private readonly requestBucket = new TokenBucket(REQUEST_RATE, REQUEST_BURST);
  private readonly notificationBucket = new TokenBucket(NOTIFICATION_RATE, NOTIFICATION_BURST);
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<AnyHandler>>();
  private readonly closeHandlers = new Set<(reason: string) => void>();
  private readonly requestHandlers = new Map<string, (params: unknown) => Promise<unknown> | unknown>();
  private readyInfo?: ControlNotificationParams<"ready">;
  private readyWaiters: Array<(r: ControlNotificationParams<"ready">) => void> = [];
  private closed = false;
  private readonly encoder = new TextEncoder();
  /** The last seq'd notification handled (live restore). */
  private lastSeq = 0;
  private resuming = false;
  /** Seq'd notifications that arrived live while resuming, handled after the replay. */
  private held: { method: string; params: unknown }[] = [];
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private seqFd: number | undefined;

  private constructor(
    readonly path: string,
    sink: ReportSink,
  ) {
    // The socket lives in the instance's run directory, named by its id.
    this.reporter = new RepeatReporter(sink, basename(dirname(path)));
    this.splitter = new LineSplitter({
      maxLineBytes: GUEST_LINE_MAX_BYTES,
      onOverlong: () =>
        this.reporter.report("overlong", "over-long control lines", `control channel: guest line over ${GUEST_LINE_MAX_BYTES} bytes dropped (skipped to the next newline)`, {
          dropped_lines: this.splitter.overlongLines,
        }),
    });
  }

  /**
   * Listen on `path` (a stale socket file is removed first); complaints about guest input go to `sink` (default: aegisd's log via stderr).
   * `seqFile`: where the last handled seq is recorded; with `adopt`, the channel starts from the seq recorded there (a VM that ran on
   * while no daemon listened, see {@link resume}), otherwise the file starts at 0.
   */
  static listen(path: string, sink: ReportSink = stderrSink, opts: { seqFile?: string; adopt?: boolean } = {}): ControlChannel {
    const ch = new ControlChannel(path, sink);
    if (opts.seqFile) {
      ch.lastSeq = opts.adopt ? readSeqFile(opts.seqFile) : 0;
      // Adopting: the guest's held writes flush the moment QEMU reconnects, before anyone subscribed.
      // Ignore seq'd notifications until resume() asks for them (they stay in the guest's ring).
      ch.resuming = opts.adopt === true;
      ch.seqFd = openSync(opts.seqFile, opts.adopt && existsSync(opts.seqFile) ? "r+" : "w", 0o600);
      ch.recordSeq();
    }
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    ch.listener = Bun.listen<undefined>({
      unix: path,
      socket: {
        open: (s) => ch.attach(s),
        data: (_s, data) => ch.onData(data),
        drain: (s) => ch.flush(s),
        close: (s) => ch.detach(s, "guest disconnected"),
        error: (s, err) => ch.detach(s, `socket error: ${err.message}`),
      },
    });
    return ch;
  }

  /** The last seq'd notification handled. */
  get handledSeq(): number {
    return this.lastSeq;
  }

  /** Resolve once a peer is connected (QEMU's chardev reconnects to a new listener within a second); throws after `timeoutMs`. */
  async waitConnected(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.socket) {
      if (this.closed) throw new ChannelClosedError(`control channel ${this.path} is closed`);
      if (Date.now() > deadline) throw new ChannelTimeoutError(`the VM did not connect to ${this.path} within ${timeoutMs} ms`);
      await Bun.sleep(20);
    }
  }

  /**
   * After (re)connecting to a VM that ran on without us: ask the harness for
   * everything after the last seq handled and handle it, in order. Seq'd
   * notifications arriving meanwhile are ignored (the answer has them).
   * Returns how many notifications were replayed.
   */
  async resume(timeoutMs = 10_000): Promise<number> {
    this.resuming = true;
    let result: ControlRequestResult<"resume">;
    try {
      result = await this.call("resume", { after_seq: this.lastSeq }, { timeoutMs });
    } catch (err) {
      this.resuming = false;
      this.held = [];
      throw err;
    }
    // Still resuming: what arrives live until the replay is handled is held, not handled out of order.
    let replayed = 0;
    for (const entry of result.replay.slice(0, MAX_REPLAY_ENTRIES)) {
      const before = this.lastSeq;
      this.notificationIn(entry.method, entry.params, true);
      if (this.lastSeq > before) replayed++;
    }
    // Then the live ones that came meanwhile: those the answer carried are skipped by seq, the rest
    // (sent after the answer, even in the same read as the answer) are handled now, in order.
    this.resuming = false;
    const held = this.held;
    this.held = [];
    for (const entry of held) this.notificationIn(entry.method, entry.params, true);
    // The harness may hold notifications the previous daemon handled but never acknowledged.
    if (result.last_seq > 0) this.scheduleAck();
    return replayed;
  }

  /** True while a peer (QEMU) is connected. */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** Send a request and await its result (validated against the method's schema). */
  call<M extends ControlRequestMethod>(
    method: M,
    params?: ControlRequestParams<M>,
    opts: { timeoutMs?: number } = {},
  ): Promise<ControlRequestResult<M>> {
    if (this.closed) return Promise.reject(new ChannelClosedError(`control channel ${this.path} is closed`));
    const id = this.nextId++;
    return new Promise<ControlRequestResult<M>>((resolve, reject) => {
      const p: Pending = {
        method,
        resolve: (v) => {
          const parsed = ControlRequests[method].result.safeParse(v);
          if (parsed.success) resolve(parsed.data as ControlRequestResult<M>);
          else reject(new Error(`guest answered ${method} with an invalid result: ${parsed.error.message}`));
        },
        reject,
      };
      const timeoutMs = opts.timeoutMs ?? 30_000;
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new ChannelTimeoutError(`guest did not answer ${method} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.write(request(id, method, params));
    });
  }

  /**
   * Send a notification (no answer). `onWritten` is called once its bytes
   * are in the socket (the kernel delivers them to QEMU even if aegisd dies
   * next), not while they wait in the outbox for a connection or a drain.
   */
  notify(method: string, params?: unknown, onWritten?: () => void): void {
    if (this.closed) throw new ChannelClosedError(`control channel ${this.path} is closed`);
    this.write(notification(method, params), onWritten);
  }

  /** Subscribe to a guest notification; returns the unsubscribe function. */
  onNotification<M extends ControlNotificationMethod>(method: M, handler: (params: ControlNotificationParams<M>) => void): () => void {
    let set = this.handlers.get(method);
    if (!set) {
      set = new Set();
      this.handlers.set(method, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Serve a guest -> host request method (one handler per method; a new one replaces the old). Returns the unregister function. */
  onRequest<M extends GuestRequestMethod>(method: M, handler: GuestRequestHandler<M>): () => void {
    const h = handler as (params: unknown) => Promise<unknown> | unknown;
    this.requestHandlers.set(method, h);
    return () => {
      if (this.requestHandlers.get(method) === h) this.requestHandlers.delete(method);
    };
  }

  /** Subscribe to disconnects and close; returns the unsubscribe function. */
  onClose(handler: (reason: string) => void): () => void {
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  /** Resolve with the guest's `ready` notification (immediately if it already came). */
  waitReady(timeoutMs = 0): Promise<ControlNotificationParams<"ready">> {
    if (this.readyInfo) return Promise.resolve(this.readyInfo);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (r: ControlNotificationParams<"ready">) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.readyWaiters.push(done);
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
          reject(new ChannelTimeoutError(`guest harness not ready within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** Stop listening, drop the peer and reject pending calls. Idempotent. */
  close(reason = "control channel closed"): void {
    if (this.closed) return;
    this.closed = true;
    this.socket?.end();
    this.socket = undefined;
    this.written.clear(); // never written: their senders deliver them again elsewhere (tether)
    this.listener?.stop(true);
    clearTimeout(this.ackTimer);
    if (this.seqFd !== undefined) closeSync(this.seqFd);
    this.seqFd = undefined;
    try {
      unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    this.failPending(reason);
    this.reporter.flush();
    for (const h of this.closeHandlers) h(reason);
  }

  private attach(s: Socket<undefined>): void {
    if (this.socket && this.socket !== s) this.socket.end();
    this.socket = s;
    this.flush(s);
  }

  private detach(s: Socket<undefined>, reason: string): void {
    if (this.socket !== s) return;
    this.socket = undefined;
    this.failPending(reason);
    for (const h of this.closeHandlers) h(reason);
  }

  private failPending(reason: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ChannelClosedError(`${p.method}: ${reason}`));
    }
  }

  private write(line: string, onWritten?: () => void): void {
    const bytes = this.encoder.encode(line);
    this.outbox.push(bytes);
    if (onWritten) this.written.set(bytes, onWritten);
    if (this.socket) this.flush(this.socket);
  }

  /** Callbacks of outbox entries that want to know when they left it (keyed by the entry first pushed). */
  private readonly written = new Map<Uint8Array, () => void>();

  private flush(s: Socket<undefined>): void {
    while (this.outbox.length > 0) {
      const head = this.outbox[0]!;
      const n = s.write(head);
      if (n < head.length) {
        const rest = head.subarray(Math.max(n, 0));
        const cb = this.written.get(head);
        if (cb) {
          this.written.delete(head);
          this.written.set(rest, cb);
        }
        this.outbox[0] = rest;
        return; // wait for drain
      }
      this.outbox.shift();
      const cb = this.written.get(head);
      if (cb) {
        this.written.delete(head);
        cb();
      }
    }
  }

  private onData(data: Uint8Array): void {
    for (const line of this.splitter.push(data)) {
      const msg = parseMessage(line);
      if (isParseFailure(msg)) {
        this.reporter.report("unparsable", "unparsable control lines", "control channel: unparsable line from guest", { error: clip(msg.message) });
        continue;
      }
      this.dispatch(msg);
    }
  }

  /** Answer one guest request; the answer goes to whichever peer is connected then (a request's peer is the only one). */
  private async answer(id: number | string, method: string, params: unknown): Promise<void> {
    const handler = this.requestHandlers.get(method);
    const spec = (GuestRequests as Record<string, (typeof GuestRequests)[GuestRequestMethod]>)[method];
    if (!handler || !spec) {
      this.write(errorResponse(id, { code: -32601, message: `the host does not serve ${clip(method)}` }));
      return;
    }
    const parsed = spec.params.safeParse(params ?? {});
    if (!parsed.success) {
      this.write(errorResponse(id, { code: -32602, message: `invalid ${method} params: ${parsed.error.message}` }));
      return;
    }
    try {
      const result = await handler(parsed.data);
      if (!this.closed) this.write(response(id, result));
    } catch (err) {
      if (this.closed) return;
      const e = err instanceof RpcError ? err : null;
      if (!e) this.reporter.report(`failed:${method}`, `failed ${method} requests`, `control channel: ${method} failed`, { error: clip(err instanceof Error ? (err.stack ?? err.message) : String(err), 2000) });
      this.write(errorResponse(id, e ? { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } : { code: -32603, message: `${method} failed: ${err instanceof Error ? err.message : String(err)}` }));
    }
  }

  private dispatch(msg: RpcMessage): void {
    if (msg.method === undefined) {
      const p = typeof msg.id === "number" ? this.pending.get(msg.id) : undefined;
      if (!p) return; // a late answer to a call that already timed out
      this.pending.delete(msg.id as number);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new RpcError(msg.error.code, `${p.method}: ${msg.error.message}`, msg.error.data));
      else p.resolve(msg.result);
      return;
    }
    if (msg.id !== undefined && msg.id !== null) {
      if (!this.requestBucket.take()) {
        this.reporter.report("rate:request", "rate-limited guest requests", `control channel: guest requests over ${REQUEST_RATE}/s refused`, { method: clip(msg.method) });
        if (this.outbox.length < MAX_QUEUED_REFUSALS) {
          this.write(errorResponse(msg.id, { code: RATE_LIMITED_CODE, message: `rate limited: at most ${REQUEST_RATE} requests per second (burst ${REQUEST_BURST})`, data: { code: "rate_limited" } }));
        }
        return;
      }
      void this.answer(msg.id, msg.method, msg.params);
      return;
    }
    if (msg.method !== "output" && !this.notificationBucket.take()) {
      this.reporter.report("rate:notification", "rate-limited guest notifications", `control channel: guest notifications over ${NOTIFICATION_RATE}/s dropped`, { method: clip(msg.method) });
      return;
    }
    this.notificationIn(msg.method, msg.params, false);
  }

  /** Validate and handle one guest notification, live or replayed (`replayed`: from a `resume` answer). */
  private notificationIn(method: string, params: unknown, replayed: boolean): void {
    const msg = { method, params };
    const schema = (ControlNotifications as Record<string, (typeof ControlNotifications)[ControlNotificationMethod]>)[msg.method];
    if (!schema) return; // unknown notifications are ignored for forward compatibility
    const parsed = schema.safeParse(msg.params);
    if (!parsed.success) {
      this.reporter.report(`invalid:${msg.method}`, `invalid ${msg.method} notifications`, `control channel: invalid ${msg.method} from guest`, { error: clip(parsed.error.issues[0]?.message) });
      return;
    }
    const seq = (parsed.data as { seq?: number }).seq;
    if (seq !== undefined) {
      if (this.resuming && !replayed) {
        // Handled after the resume answer's replay (see resume); bounded like a replay.
        if (this.held.length < MAX_REPLAY_ENTRIES) this.held.push({ method, params });
        else this.reporter.report("held-overflow", "live notifications dropped while resuming", "control channel: too many live notifications while resuming; dropped", { seq });
        return;
      }
      if (seq <= this.lastSeq) return; // handled already (a replay of what we had)
    }
    if (msg.method === "ready") {
      this.readyInfo = parsed.data as ControlNotificationParams<"ready">;
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w(this.readyInfo);
    }
    for (const h of this.handlers.get(msg.method) ?? []) h(parsed.data);
    if (seq !== undefined) {
      this.lastSeq = seq;
      this.recordSeq();
      this.scheduleAck();
    }
  }

  /** Record the last handled seq in the seq file (one pwrite of a fixed-width record). */
  private recordSeq(): void {
    if (this.seqFd === undefined) return;
    writeSync(this.seqFd, String(this.lastSeq).padEnd(SEQ_RECORD_BYTES, " "), 0);
  }

  /** Acknowledge the handled seqs to the guest soon (one `ack` for a burst). */
  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (!this.closed && this.socket && this.lastSeq > 0) this.write(notification("ack", { seq: this.lastSeq }));
    }, ACK_DELAY_MS);
  }
}
