/**
 * @module gateway/drop-log
 * One summarised log line for egress the gateway refuses. The guest decides
 * which chat a frame is for, so a hostile agent can send thousands of frames
 * to chats the gateway will not message; logging each would flood the log.
 * Instead the first refusal is logged at once and later ones are counted and
 * reported at most once per interval, with a few example chat ids (quoted and
 * cut short: they are the guest's words).
 */
import type { GatewayLog } from "./log.ts";

/** Longest pause between two summary lines (1 minute). */
export const DROP_REPORT_INTERVAL_MS = 60_000;
const EXAMPLES = 5;

/** Counts refused frames and logs them in summary. */
export class DropLog {
  private count = 0;
  private readonly examples = new Set<string>();
  private lastReport = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly log: GatewayLog,
    private readonly intervalMs = DROP_REPORT_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Note one refused frame addressed to `chat` for `reason`. */
  note(chat: string, reason: string): void {
    this.count++;
    if (this.examples.size < EXAMPLES) this.examples.add(JSON.stringify(chat.length > 32 ? `${chat.slice(0, 32)}…` : chat));
    if (this.now() - this.lastReport >= this.intervalMs) this.flush(reason);
  }

  private flush(reason: string): void {
    this.log.warn(`dropped ${this.count} agent frame${this.count === 1 ? "" : "s"} for chat${this.examples.size === 1 ? "" : "s"} ${[...this.examples].join(", ")}: ${reason}`);
    this.count = 0;
    this.examples.clear();
    this.lastReport = this.now();
  }
}
