/**
 * @module daemon/instances/activity
 * What keeps an instance awake: open activity (router connections, exec
 * streams, tether requests), moments of activity (a frame from the guest),
 * and keepalive leases taken by the guest's MCP server. The idle policy
 * (idle.ts) reads `idleSeconds` and `busy` from here.
 *
 * Live restore: leases and the last moment of activity are kept in the
 * instance's row (`keepalive_until`, `last_active_at`), so a daemon that
 * re-adopts a running VM goes on with the same idle clock and the same
 * lease ({@link restore}) instead of starting both from zero. Moments of
 * activity are written at most once per {@link PERSIST_EVERY_MS} (a guest
 * may send frames as fast as it likes). Open activity does not survive a
 * restart: its connections ended with the previous daemon.
 */
import type { InstancesTable } from "../registry/instances.ts";
import type { Runtimes } from "./runtime.ts";

/** How stale the recorded `last_active_at` may get while activity goes on. */
export const PERSIST_EVERY_MS = 1000;

/** Activity accounting and keepalive leases for every instance. */
export class InstanceActivity {
  /** Keepalive leases (`keepalive_acquire`): instance id -> ms since the epoch until which the idle policy leaves it alone. */
  private readonly keepalives = new Map<string, number>();
  /** The `last_active_at` last written per instance (ms since the epoch). */
  private readonly persisted = new Map<string, number>();

  constructor(
    private readonly runtimes: Runtimes,
    private readonly table: InstancesTable,
  ) {}

  /** Activity started (a connection, an exec, a tether request): the instance stays awake until it ends. */
  started(id: string): void {
    const rt = this.runtimes.of(id);
    rt.active++;
    rt.lastActivity = Date.now();
    this.persist(id, rt.lastActivity, false);
  }

  /** A moment of activity (e.g. a tether frame from the guest) that does not hold the instance awake. */
  touch(id: string): void {
    const rt = this.runtimes.of(id);
    rt.lastActivity = Date.now();
    this.persist(id, rt.lastActivity, false);
  }

  /** Record `at` as the row's `last_active_at` (always with `force`, else when the recorded one is older than PERSIST_EVERY_MS). */
  private persist(id: string, at: number, force: boolean): void {
    if (!force && at - (this.persisted.get(id) ?? 0) < PERSIST_EVERY_MS) return;
    this.persisted.set(id, at);
    // The row may be gone (deleted while a connection closed).
    if (this.table.find(id)) this.table.update(id, { last_active_at: new Date(at).toISOString() });
  }

  /**
   * A re-adopted VM (live restore): take the idle clock and the keepalive
   * lease from the row the previous daemon kept. The clock runs on from the
   * last recorded activity (nothing could reach the instance while no daemon
   * ran), or from `fallback` (its start) when none was ever recorded.
   */
  restore(id: string, row: { last_active_at: string | null; started_at: string | null; keepalive_until?: number | null }, now = Date.now()): void {
    const recorded = [row.last_active_at, row.started_at].map((t) => (t ? Date.parse(t) : Number.NaN)).filter((t) => Number.isFinite(t) && t <= now);
    this.runtimes.of(id).lastActivity = recorded.length > 0 ? Math.max(...recorded) : now;
    if (row.keepalive_until !== null && row.keepalive_until !== undefined && row.keepalive_until > now) this.keepalives.set(id, row.keepalive_until);
    else this.keepalives.delete(id);
  }

  /** Activity ended; the idle clock starts again from now (recorded as `last_active_at`). */
  ended(id: string): void {
    const rt = this.runtimes.of(id);
    rt.active = Math.max(0, rt.active - 1);
    rt.lastActivity = Date.now();
    this.persist(id, rt.lastActivity, true);
  }

  /** Hold the idle policy off `id` until `until` (ms since the epoch), or release the hold with null; recorded in the row. */
  setKeepalive(id: string, until: number | null): void {
    if (until === null) this.keepalives.delete(id);
    else this.keepalives.set(id, until);
    if (this.table.find(id)) this.table.update(id, { keepalive_until: until });
  }

  /** The keepalive deadline of `id` (ms since the epoch), or null when none holds (an expired one is dropped). */
  keepaliveUntil(id: string, now = Date.now()): number | null {
    const until = this.keepalives.get(id);
    if (until === undefined) return null;
    if (until <= now) {
      this.keepalives.delete(id);
      return null;
    }
    return until;
  }

  /** Whether open activity or a keepalive lease holds `id` awake. */
  busy(id: string, now = Date.now()): boolean {
    return (this.runtimes.peek(id)?.active ?? 0) > 0 || this.keepaliveUntil(id, now) !== null;
  }

  /** Seconds since the last activity of `id`. */
  idleSeconds(id: string, now = Date.now()): number {
    return (now - this.runtimes.of(id).lastActivity) / 1000;
  }

  /** Forget `id` (after a delete). */
  forget(id: string): void {
    this.keepalives.delete(id);
    this.persisted.delete(id);
  }
}
