/**
 * @module daemon/ui/wakes
 * Wake counts for the UI, kept from the daemon's state changes
 * (daemon/events.ts) since aegisd started: a wake is an instance leaving
 * `paused` for `running` (resume) or `stopped`/`failed` for `starting`
 * (boot or snapshot restore) after having run once (`started_at` set: an
 * instance's first boot is its start, not a wake), whatever caused it (a request through the
 * router, a tether message, exec, the CLI or the UI). The registry keeps no
 * history, so counts start at zero with each daemon; the page says so.
 */
import type { EventBus } from "../events.ts";

/** Per-instance wake counters fed by the event bus. */
export class WakeCounter {
  private readonly last = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  /** `stateOf` reads an instance's current state and `started_at` (null when it is gone). */
  constructor(
    events: EventBus,
    private readonly stateOf: (id: string) => { state: string; started_at: string | null } | null,
    initial: { id: string; state: string }[],
  ) {
    for (const i of initial) this.last.set(i.id, i.state);
    events.subscribe((e) => this.changed(e.id));
  }

  private changed(id: string): void {
    const row = this.stateOf(id);
    const before = this.last.get(id);
    if (row === null) {
      this.last.delete(id);
      this.counts.delete(id);
      return;
    }
    const now = row.state;
    if (now === before) return;
    this.last.set(id, now);
    const woke = (before === "paused" && now === "running") || ((before === "stopped" || before === "failed") && now === "starting" && row.started_at !== null);
    if (woke) this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  /** Wakes of `id` since aegisd started. */
  of(id: string): number {
    return this.counts.get(id) ?? 0;
  }
}
