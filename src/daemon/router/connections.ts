/**
 * @module daemon/router/connections
 * The long-lived connections the router holds open per instance (bridged
 * WebSockets, raw TCP pipes), so removing an instance or stopping the router
 * can close them instead of leaving clients attached to a VM that is gone.
 */

/** Closes one connection; called at most once. */
export type Closer = () => void;

/** Open connections grouped by instance id. */
export class OpenConnections {
  readonly #byInstance = new Map<string, Set<Closer>>();

  /** Register a connection; the returned function unregisters it (call it when the connection closes). */
  add(instanceId: string, close: Closer): () => void {
    let set = this.#byInstance.get(instanceId);
    if (!set) this.#byInstance.set(instanceId, (set = new Set()));
    set.add(close);
    return () => {
      set.delete(close);
      if (set.size === 0 && this.#byInstance.get(instanceId) === set) this.#byInstance.delete(instanceId);
    };
  }

  /** Number of open connections to `instanceId` (all instances when omitted). */
  count(instanceId?: string): number {
    if (instanceId !== undefined) return this.#byInstance.get(instanceId)?.size ?? 0;
    let n = 0;
    for (const set of this.#byInstance.values()) n += set.size;
    return n;
  }

  /** Close every connection to `instanceId`. */
  closeInstance(instanceId: string): void {
    const set = this.#byInstance.get(instanceId);
    if (!set) return;
    this.#byInstance.delete(instanceId);
    for (const close of [...set]) close();
  }

  /** Close every connection. */
  closeAll(): void {
    for (const id of [...this.#byInstance.keys()]) this.closeInstance(id);
  }
}
