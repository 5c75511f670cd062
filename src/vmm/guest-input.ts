/**
 * @module vmm/guest-input
 * Two small tools the host uses on everything a guest sends it:
 * {@link TokenBucket} (rate limits per instance) and {@link RepeatReporter}
 * (one log line for the first bad input of a kind, then at most one summary
 * per minute: "N more invalid tether frames from inst-x in the last 60 s"),
 * so a guest that repeats garbage as fast as it can adds a few lines a
 * minute to aegisd.log instead of one line per attempt.
 */

/** A token bucket: `burst` tokens, refilled at `ratePerSec`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Take one token; false when the bucket is empty (the caller refuses or drops the input). */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSec);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Where a {@link RepeatReporter} writes (a logger's `warn`). */
export type ReportSink = (msg: string, fields: Record<string, unknown>) => void;

interface Window {
  what: string;
  suppressed: number;
  timer: ReturnType<typeof setTimeout>;
}

/** Logs the first event of each key at once and summarises the repeats once per window. */
export class RepeatReporter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly sink: ReportSink,
    /** Who sends the input (an instance or VM id), named in every line. */
    private readonly source: string,
    private readonly windowMs = 60_000,
  ) {}

  /**
   * One event of kind `key` (`what` names it in the summary, plural).
   * `fields` (already clipped by the caller) go into the first line only.
   */
  report(key: string, what: string, msg: string, fields: Record<string, unknown> = {}): void {
    const w = this.windows.get(key);
    if (w) {
      w.suppressed++;
      return;
    }
    this.sink(msg, { source: this.source, ...fields });
    this.open(key, what);
  }

  /** Write the pending summaries now and stop the timers (the channel closed). */
  flush(): void {
    for (const [key, w] of this.windows) {
      clearTimeout(w.timer);
      this.summarise(w);
      this.windows.delete(key);
    }
  }

  private open(key: string, what: string): void {
    const timer = setTimeout(() => {
      const w = this.windows.get(key);
      if (!w) return;
      this.windows.delete(key);
      if (w.suppressed > 0) {
        this.summarise(w);
        this.open(key, what); // still noisy: keep summarising instead of logging the next one whole
      }
    }, this.windowMs);
    timer.unref?.();
    this.windows.set(key, { what, suppressed: 0, timer });
  }

  private summarise(w: Window): void {
    if (w.suppressed === 0) return;
    this.sink(`${w.suppressed} more ${w.what} from ${this.source} in the last ${Math.round(this.windowMs / 1000)} s`, { source: this.source, count: w.suppressed });
  }
}
