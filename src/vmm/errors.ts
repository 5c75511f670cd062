/**
 * @module vmm/errors
 * Typed errors of the VM layer that callers (the daemon's instance service)
 * are expected to branch on, each with a stable `code` and a name-based
 * guard (no `instanceof` across module copies or the wire, STYLE rule 11):
 * - `SnapshotUnsupportedError` (`snapshot_unsupported`): `Vm.snapshot()` on a
 *   VM that cannot be migrated (today: a virtiofs workspace is attached, which
 *   QEMU 7.2 refuses with "State blocked by non-migratable device
 *   .../vhost-user-fs"). Nothing happened to the VM: it keeps running.
 *   Fallback: stop it cleanly and cold boot later.
 * - `SnapshotStaleError` (`snapshot_stale`): `Backend.boot({restoreFrom})`
 *   refused to restore because the snapshot file, its metadata or the disks
 *   it depends on are missing or changed since it was written. Raised before
 *   anything is spawned. Fallback: delete the snapshot and cold boot (a
 *   snapshot is only a cache; the overlay disk holds the data).
 * - `GuestPortTimeoutError` (`guest_port_timeout`): nothing listened on the
 *   guest TCP port in time (`waitGuestPort`).
 */

/** Why a VM cannot be snapshotted. */
export class SnapshotUnsupportedError extends Error {
  override name = "SnapshotUnsupportedError";
  readonly code = "snapshot_unsupported" as const;
  constructor(
    readonly vmId: string,
    readonly reason: string,
    hint: string,
  ) {
    super(`cannot snapshot VM ${vmId}: ${reason}\nhint: ${hint}`);
  }
}

/** A memory snapshot that must not be restored; cold boot instead. */
export class SnapshotStaleError extends Error {
  override name = "SnapshotStaleError";
  readonly code = "snapshot_stale" as const;
  constructor(
    readonly snapshot: string,
    readonly reason: string,
  ) {
    super(`memory snapshot ${snapshot} cannot be restored: ${reason}\nhint: delete it and cold boot; the instance's disk keeps its files`);
  }
}

/** Nothing listened on a guest TCP port before the deadline. */
export class GuestPortTimeoutError extends Error {
  override name = "GuestPortTimeoutError";
  readonly code = "guest_port_timeout" as const;
  constructor(
    readonly vmId: string,
    readonly port: number,
    readonly timeoutMs: number,
  ) {
    super(
      `nothing listens on TCP port ${port} in VM ${vmId} after ${timeoutMs} ms\nhint: check that the server started (aegis logs) and binds 0.0.0.0:${port}, not 127.0.0.1`,
    );
  }
}

function hasName(x: unknown, name: string): boolean {
  return typeof x === "object" && x !== null && (x as { name?: unknown }).name === name;
}

/** Name-based guard for `SnapshotUnsupportedError`. */
export function isSnapshotUnsupported(x: unknown): x is SnapshotUnsupportedError {
  return hasName(x, "SnapshotUnsupportedError");
}

/** Name-based guard for `SnapshotStaleError`. */
export function isSnapshotStale(x: unknown): x is SnapshotStaleError {
  return hasName(x, "SnapshotStaleError");
}

/** Name-based guard for `GuestPortTimeoutError`. */
export function isGuestPortTimeout(x: unknown): x is GuestPortTimeoutError {
  return hasName(x, "GuestPortTimeoutError");
}
