/**
 * @module daemon/instances/activity
 * What keeps an instance awake: open activity (router connections, exec
 * streams, tether requests), moments of activity (a frame from the guest),
 * and keepalive leases taken by the guest's MCP server. The idle policy
 * (idle.ts) reads `idleSeconds` and `busy` from here.
 */
import type { InstancesTable } from "../registry/instances.ts";
import type { Runtimes } from "./runtime.ts";

/** Activity accounting and keepalive leases for every instance. */
export class InstanceActivity {
  /** Keepalive leases (`keepalive_acquire`): instance id -> ms since the epoch until which the idle policy leaves it alone. */
  private readonly keepalives = new Map<string, number>();

  constructor(
    private readonly runtimes: Runtimes,
    private readonly table: InstancesTable,
  ) {}

  /** Activity started (a connection, an exec, a tether request): the instance stays awake until it ends. */
  started(id: string): void {
    const rt = this.runtimes.of(id);
    rt.active++;
    rt.lastActivity = Date.now();
  }

  /** A moment of activity (e.g. a tether frame from the guest) that does not hold the instance awake. */
  touch(id: string): void {
    this.runtimes.of(id).lastActivity = Date.now();
  }

  /** Activity ended; the idle clock starts again from now (recorded as `last_active_at`). */
  ended(id: string): void {
    const rt = this.runtimes.of(id);
    rt.active = Math.max(0, rt.active - 1);
    rt.lastActivity = Date.now();
    this.table.update(id, { last_active_at: new Date(rt.lastActivity).toISOString() });
  }

  /** Hold the idle policy off `id` until `until` (ms since the epoch), or release the hold with null. */
  setKeepalive(id: string, until: number | null): void {
    if (until === null) this.keepalives.delete(id);
    else this.keepalives.set(id, until);
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
  }
}
