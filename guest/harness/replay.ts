/**
 * @module guest/harness/replay
 * The harness's replay ring (live restore, api/schema/control.ts): every
 * `output`, `exit` and `tether.frame` notification gets the next `seq` and
 * is kept until the host acknowledges it (`ack`, cumulative), so a host
 * that went away (aegisd killed or upgraded) and came back can ask for
 * everything after the last seq it handled (`resume`) and lose nothing.
 *
 * Bounded by bytes ({@link REPLAY_MAX_BYTES} of JSON lines): once that much
 * is unacknowledged, {@link ReplayRing.send} waits for acks before taking
 * more, which stalls the producers (process output pumps, the tether relay)
 * exactly as a slow host does; nothing is ever dropped. While the host is
 * away the port's writes block anyway (virtio-serial holds them), so the
 * ring holds only what was in flight when the host vanished.
 *
 * The seq is assigned and the line queued on the port in one synchronous
 * step, so the port carries seqs in order, and `resume` answers in one
 * synchronous step too: everything queued before the answer is in it.
 */
import { notification } from "../../src/api/jsonrpc.ts";

/** Unacknowledged notification bytes beyond which senders wait (the `resume` answer must stay under the host's 8 MiB line limit). */
export const REPLAY_MAX_BYTES = 4 * 1024 * 1024;

/** A notification method the ring carries. */
export type ReplayMethod = "output" | "exit" | "tether.frame";

interface Entry {
  seq: number;
  method: ReplayMethod;
  params: Record<string, unknown>;
  bytes: number;
}

/** Seq assignment, the unacknowledged notifications, and their replay. */
export class ReplayRing {
  private seq = 0;
  private entries: Entry[] = [];
  private bytes = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly write: (line: string) => Promise<void>,
    private readonly maxBytes = REPLAY_MAX_BYTES,
  ) {}

  /** The last seq assigned. */
  get lastSeq(): number {
    return this.seq;
  }

  /** Bytes held (unacknowledged). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Send `method` with `params` plus the next seq; resolves once written to the port. Waits first while the ring is full. */
  async send(method: ReplayMethod, params: Record<string, unknown>): Promise<void> {
    while (this.bytes >= this.maxBytes) await new Promise<void>((r) => this.waiters.push(r));
    const seq = ++this.seq;
    const withSeq = { ...params, seq };
    const line = notification(method, withSeq);
    this.entries.push({ seq, method, params: withSeq, bytes: line.length });
    this.bytes += line.length;
    await this.write(line);
  }

  /** The host handled everything up to `seq`: forget it and let waiting senders go. */
  ack(seq: number): void {
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.seq <= seq) {
      this.bytes -= this.entries[drop]!.bytes;
      drop++;
    }
    if (drop > 0) this.entries = this.entries.slice(drop);
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  /** The `resume` answer: the held notifications after `afterSeq`, oldest first. */
  after(afterSeq: number): { replay: { method: ReplayMethod; params: Record<string, unknown> }[]; last_seq: number } {
    return { replay: this.entries.filter((e) => e.seq > afterSeq).map((e) => ({ method: e.method, params: e.params })), last_seq: this.seq };
  }
}
