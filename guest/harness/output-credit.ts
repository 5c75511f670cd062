/**
 * @module guest/harness/output-credit
 * Credit-based flow control of one process's output (`run` with a
 * `window`, see api/schema/control.ts): the pumps count every raw byte
 * they send, and stop reading the process's pipes while `window` bytes are
 * unacknowledged, so a process whose reader stopped (a suspended `aegis
 * exec`, `| less`) blocks on write as under a stopped terminal, instead of
 * its output piling up in the harness or in aegisd. The host returns credit
 * with `output.ack` as its reader consumes the bytes.
 */

/** The unacknowledged-bytes counter of one process. */
export class OutputCredit {
  private unacked = 0;
  private released = false;
  private waiters: Array<() => void> = [];

  /** `window`: bytes that may be in flight; undefined means unlimited (no flow control). */
  constructor(private readonly window: number | undefined) {}

  /** True while a pump waits for credit (its process is being held back by the host). */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Count `bytes` just sent; resolves once the in-flight total is below the window again. */
  async sent(bytes: number): Promise<void> {
    if (this.window === undefined) return;
    this.unacked += bytes;
    while (!this.released && this.unacked >= this.window) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** The host consumed `bytes` (bounded by what is in flight: a guest-side count never goes negative). */
  ack(bytes: number): void {
    this.unacked = Math.max(0, this.unacked - bytes);
    this.wake();
  }

  /** Stop holding back (the process is being cut or killed). */
  release(): void {
    this.released = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}
