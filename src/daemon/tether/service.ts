/**
 * @module daemon/tether/service
 * The host side of the tether (spec: agent-kit.md). Ingress frames are
 * validated, completed (`msg_id`, `ts`), stored with their `seq` and
 * answered 202 at once; delivery then wakes the instance (resume when
 * paused, restore or boot when stopped: wake-on-message) and hands the frame
 * to the harness as a `tether.frame` notification, in order per instance.
 * Egress frames from the harness are validated, stored and streamed.
 *
 * Delivery survives aegisd: the last ingress frame written to the guest's
 * control channel is recorded (`delivered_seq`), and every VM that boots or
 * is re-adopted first gets the frames stored after it, in order; the
 * harness drops a frame whose seq it has already passed on (a crash between
 * the write and the record), so none arrives twice.
 *
 * A user message holds the instance awake (idle policy) until its
 * `assistant.done` arrives, or 10 minutes pass.
 *
 * Size: a complete frame is at most `MAX_FRAME_BYTES` (1 MiB) of JSON.
 * Ingress over it is a 400 that stores nothing; egress over it (or
 * invalid) is dropped, and reported once to aegisd's log and the instance
 * log, then summarised once a minute (a guest repeating bad frames adds a
 * few lines, not one per frame). Guest text in those lines is clipped and
 * escaped (api/untrusted-text.ts).
 */
import { InvalidRequest } from "../../api/errors.ts";
import { completeFrame, frameBytes, MAX_FRAME_BYTES, type TetherIngress, TetherEgressDraft } from "../../api/schema/tether.ts";
import { clip } from "../../api/untrusted-text.ts";
import { RepeatReporter } from "../../vmm/guest-input.ts";
import type { Vm } from "../../vmm/backend.ts";
import type { Logger } from "../api/deps.ts";
import type { InstancesService } from "../instances/service.ts";
import { SerialQueue } from "../instances/serial.ts";
import type { LogStore } from "../logs/log-store.ts";
import { followTether } from "./follow.ts";
import type { StoredFrame, TetherStore } from "./store.ts";

/** How long a user message may hold an instance awake without an answer. */
const REPLY_HOLD_MS = 10 * 60 * 1000;

/** Tether ingress, delivery and egress. */
export class TetherService {
  private readonly serial = new SerialQueue();
  private readonly holds = new Map<string, ReturnType<typeof setTimeout>[]>();
  private readonly reporters = new Map<string, RepeatReporter>();

  constructor(
    private readonly store: TetherStore,
    private readonly instances: InstancesService,
    private readonly logs: LogStore,
    private readonly log: Logger,
  ) {
    instances.onBoot.push((id, vm) => this.attach(id, vm));
    instances.onDeleted.push((id) => this.forget(id));
  }

  /**
   * Accept a host -> guest frame: store it and deliver it in the background
   * (waking the instance). Idempotent by `msg_id`: a frame whose `msg_id` was
   * already accepted (a client retrying after a crash) gets the original
   * answer and is not delivered again.
   */
  ingress(ref: string, draft: TetherIngress): { msg_id: string; seq: number } {
    const id = this.instances.row(ref).id;
    if (draft.msg_id !== undefined) {
      const seen = this.store.findByMsgId(id, "ingress", draft.msg_id);
      if (seen) return { msg_id: draft.msg_id, seq: seen.seq };
    }
    const complete = completeFrame(draft, { seq: this.store.lastSeq(id) + 1 });
    const size = frameBytes(complete);
    if (size > MAX_FRAME_BYTES) {
      throw new InvalidRequest(`tether frame is ${size} bytes as JSON; the limit is ${MAX_FRAME_BYTES} bytes`, "split the text into several messages");
    }
    const stored = this.store.append(id, "ingress", complete);
    void this.serial.run(id, () => this.deliver(id, stored));
    return { msg_id: stored.msg_id as string, seq: stored.seq };
  }

  /** Replay egress frames after `afterSeq` (recent ones when undefined), then live ones. */
  subscribe(ref: string, afterSeq: number | undefined, onFrame: (f: StoredFrame) => void): () => void {
    return this.store.subscribe(this.instances.row(ref).id, afterSeq, onFrame);
  }

  /** Like {@link subscribe}, held to the reader's pace (follow.ts) until `signal` aborts. */
  follow(ref: string, afterSeq: number | undefined, emit: (f: StoredFrame) => Promise<void>, signal: AbortSignal): Promise<void> {
    return followTether(this.store, this.instances.row(ref).id, afterSeq, emit, signal);
  }

  private async deliver(id: string, frame: StoredFrame): Promise<void> {
    // Delivered already (by the redelivery after a boot or an adoption).
    if (frame.seq <= this.store.deliveredSeq(id)) return;
    this.instances.activity.started(id);
    try {
      const rt = await this.instances.ensureRunning(id);
      if (!rt.vm) throw new Error("the instance has no running VM");
      // Recorded once the bytes are in the socket, so a daemon that dies before is followed by one that delivers it again.
      rt.vm.channel.notify("tether.frame", { frame }, () => this.store.markDelivered(id, frame.seq));
      if (frame.type === "user.message") this.hold(id);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.logs.note(id, `aegis: tether frame ${frame.seq} (${clip(frame.type, 64)}) not delivered: ${message}`);
      this.log.warn("tether delivery failed", { instance: id, seq: frame.seq, error: message });
    } finally {
      this.instances.activity.ended(id);
    }
  }

  /**
   * Ingress frames stored but never handed to the guest: aegisd died between
   * the 202 and the delivery (a wake in progress, a frame still in the
   * outbox), or the wake failed. Delivered in order, once the VM that just
   * booted or was re-adopted runs, behind what is already queued.
   */
  private redeliver(id: string): void {
    void this.serial.run(id, async () => {
      for (;;) {
        const page = this.store.frames(id, "ingress", this.store.deliveredSeq(id), 100);
        if (page.length === 0) return;
        this.log.info("tether frames delivered again after a restart or a failed wake", { instance: id, from_seq: page[0]!.seq, frames: page.length });
        for (const f of page) await this.deliver(id, f);
        // Not handed over (the VM went away again): the next boot tries again.
        if (this.store.deliveredSeq(id) < page.at(-1)!.seq) return;
      }
    });
  }

  /** Subscribe to a freshly booted VM's guest -> host frames. */
  private attach(id: string, vm: Vm): void {
    this.redeliver(id);
    vm.channel.onNotification("tether.frame", ({ frame }) => {
      const parsed = TetherEgressDraft.safeParse(frame);
      if (!parsed.success) {
        this.refuse(id, "invalid", "invalid tether frames", `the agent sent an invalid tether frame (${clip(frame.type, 64)}): ${clip(parsed.error.issues[0]?.message ?? "invalid")}`);
        return;
      }
      const complete = completeFrame(parsed.data, { seq: this.store.lastSeq(id) + 1 });
      const size = frameBytes(complete);
      if (size > MAX_FRAME_BYTES) {
        this.refuse(id, "too-large", "over-size tether frames", `the agent sent a tether frame of ${size} bytes (${parsed.data.type}); the limit is ${MAX_FRAME_BYTES} bytes`);
        return;
      }
      this.store.append(id, "egress", complete);
      this.instances.activity.touch(id);
      if (parsed.data.type === "assistant.done") this.release(id);
    });
  }

  /** Drop a guest frame: the first of a kind is logged (and noted in the instance log), repeats are summarised. */
  private refuse(id: string, key: string, what: string, message: string): void {
    let r = this.reporters.get(id);
    if (!r) {
      r = new RepeatReporter((msg, fields) => {
        this.log.warn(msg, fields);
        this.logs.note(id, `aegis: ${msg}`);
      }, id);
      this.reporters.set(id, r);
    }
    r.report(key, what, message);
  }

  private hold(id: string): void {
    this.instances.activity.started(id);
    const timer = setTimeout(() => this.release(id), REPLY_HOLD_MS);
    const list = this.holds.get(id) ?? [];
    list.push(timer);
    this.holds.set(id, list);
  }

  private release(id: string): void {
    const timer = this.holds.get(id)?.shift();
    if (timer === undefined) return;
    clearTimeout(timer);
    this.instances.activity.ended(id);
  }

  private forget(id: string): void {
    for (const t of this.holds.get(id) ?? []) clearTimeout(t);
    this.holds.delete(id);
    this.reporters.get(id)?.flush();
    this.reporters.delete(id);
    this.store.deleteInstance(id);
  }
}
