/**
 * @module daemon/ui/wakes
 * Wake counts for the UI, kept from the daemon's state changes
 * (daemon/events.ts) since aegisd started: a wake is an instance leaving
 * `paused` for `running` (resume) or `stopped`/`failed` for `starting`
 * (boot or snapshot restore), whatever caused it (a request through the
 * router, a tether message, exec, the CLI or the UI). The registry keeps no
 * history, so counts start at zero with each daemon; the page says so.
 */
import type { EventBus } from "../events.ts";

/** Per-instance wake counters fed by the event bus. */
export class WakeCounter {
  private readonly last = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  /** `stateOf` reads an instance's current state (null when it is gone). */
  constructor(
    events: EventBus,
    private readonly stateOf: (id: string) => string | null,
    initial: { id: string; state: string }[],
  ) {
    for (const i of initial) this.last.set(i.id, i.state);
    events.subscribe((e) => this.changed(e.id));
  }

  private changed(id: string): void {
    const now = this.stateOf(id);
    const before = this.last.get(id);
    if (now === null) {
      this.last.delete(id);
      this.counts.delete(id);
      return;
    }
    if (now === before) return;
    this.last.set(id, now);
    const woke = (before === "paused" && now === "running") || ((before === "stopped" || before === "failed") && now === "starting");
    if (woke) this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  /** Wakes of `id` since aegisd started. */
  of(id: string): number {
    return this.counts.get(id) ?? 0;
  }
}
