/**
 * @module daemon/tether/service
 * The host side of the tether (spec: agent-kit.md). Ingress frames are
 * validated, completed (`msg_id`, `ts`), stored with their `seq` and
 * answered 202 at once; delivery then wakes the instance (resume when
 * paused, restore or boot when stopped: wake-on-message) and hands the frame
 * to the harness as a `tether.frame` notification, in order per instance.
 * Egress frames from the harness are validated, stored and streamed.
 *
 * A user message holds the instance awake (idle policy) until its
 * `assistant.done` arrives, or 10 minutes pass.
 */
import { completeFrame, type TetherIngress, TetherEgressDraft } from "../../api/schema/tether.ts";
import type { Vm } from "../../vmm/backend.ts";
import type { Logger } from "../api/deps.ts";
import type { InstancesService } from "../instances/service.ts";
import { SerialQueue } from "../instances/serial.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { StoredFrame, TetherStore } from "./store.ts";

/** How long a user message may hold an instance awake without an answer. */
const REPLY_HOLD_MS = 10 * 60 * 1000;

/** Tether ingress, delivery and egress. */
export class TetherService {
  private readonly serial = new SerialQueue();
  private readonly holds = new Map<string, ReturnType<typeof setTimeout>[]>();

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
    const stored = this.store.append(id, "ingress", completeFrame(draft, { seq: 0 }));
    void this.serial.run(id, () => this.deliver(id, stored));
    return { msg_id: stored.msg_id as string, seq: stored.seq };
  }

  /** Replay egress frames after `afterSeq` (recent ones when undefined), then live ones. */
  subscribe(ref: string, afterSeq: number | undefined, onFrame: (f: StoredFrame) => void): () => void {
    return this.store.subscribe(this.instances.row(ref).id, afterSeq, onFrame);
  }

  private async deliver(id: string, frame: StoredFrame): Promise<void> {
    this.instances.activity.started(id);
    try {
      const rt = await this.instances.ensureRunning(id);
      if (!rt.vm) throw new Error("the instance has no running VM");
      rt.vm.channel.notify("tether.frame", { frame });
      if (frame.type === "user.message") this.hold(id);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.logs.note(id, `aegis: tether frame ${frame.seq} (${String(frame.type)}) not delivered: ${message}`);
      this.log.warn("tether delivery failed", { instance: id, seq: frame.seq, error: message });
    } finally {
      this.instances.activity.ended(id);
    }
  }

  /** Subscribe to a freshly booted VM's guest -> host frames. */
  private attach(id: string, vm: Vm): void {
    vm.channel.onNotification("tether.frame", ({ frame }) => {
      const parsed = TetherEgressDraft.safeParse(frame);
      if (!parsed.success) {
        this.log.warn("invalid egress tether frame dropped", { instance: id, type: String(frame.type), error: parsed.error.issues[0]?.message });
        this.logs.note(id, `aegis: the agent sent an invalid tether frame (${String(frame.type)}): ${parsed.error.issues[0]?.message ?? "invalid"}`);
        return;
      }
      this.store.append(id, "egress", completeFrame(parsed.data, { seq: 0 }));
      this.instances.activity.touch(id);
      if (parsed.data.type === "assistant.done") this.release(id);
    });
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
    this.store.deleteInstance(id);
  }
}
