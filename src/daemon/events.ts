/**
 * @module daemon/events
 * The daemon's own change notifications: a tiny synchronous bus that the
 * registry tables publish to after every write, so fronts such as the web UI
 * (daemon/ui) follow state without polling. Events carry only which record
 * changed; subscribers read the current view themselves, so a burst of
 * updates can never show a stale intermediate state last.
 */

/** What changed. `id` is the record's id; the record may be gone (deleted). */
export type DaemonEvent = { kind: "instance"; id: string };

/** A subscriber. Must not throw: a throwing subscriber is dropped and reported. */
export type EventListener = (event: DaemonEvent) => void;

/** Publish/subscribe over {@link DaemonEvent}s. */
export class EventBus {
  private readonly listeners = new Set<EventListener>();

  /** `onError`: where a failing subscriber is reported (it is then removed). */
  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  /** Receive every later event; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Deliver `event` to every subscriber. A subscriber's failure must not
   * undo or interrupt the daemon's write that published it, so it is
   * reported through `onError` and the subscriber removed.
   */
  publish(event: DaemonEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.listeners.delete(listener);
        this.onError(err);
      }
    }
  }

  /** How many subscribers there are (tests, status). */
  get size(): number {
    return this.listeners.size;
  }
}
