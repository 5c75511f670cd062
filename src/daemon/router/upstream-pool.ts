/**
 * @module daemon/router/upstream-pool
 * Kept-alive TCP connections to guest ports, per instance and host address,
 * for the router front (http-front.ts): a finished exchange gives its
 * connection back and the next request to the same place reuses it instead
 * of paying a new connect (and, under QEMU user networking, a new guest
 * accept) per request. Idle connections are bounded in number and time, and
 * one that the guest closes or that sends anything while idle is dropped.
 */
import type { Socket } from "bun";
import type { HostAddress } from "./types.ts";

/** Idle connections kept per instance address. */
const MAX_IDLE = 32;
/** Seconds an idle connection is kept. */
const IDLE_SECONDS = 30;

/** What receives an upstream connection's events while it serves an exchange. */
export interface UpstreamOwner {
  onUpstreamData(up: Upstream, chunk: Uint8Array): void;
  onUpstreamDrain(up: Upstream): void;
  /** The guest sent FIN or the connection closed (`err` when it broke); called once. */
  onUpstreamClose(up: Upstream, err?: Error): void;
}

/** One TCP connection to a guest port. */
export class Upstream {
  socket!: Socket<Upstream>;
  owner: UpstreamOwner | null = null;
  closed = false;
  /** Served an exchange before (so a failure on it may be a stale keep-alive, worth one retry). */
  reused = false;
  constructor(
    readonly key: string,
    readonly instanceId: string,
  ) {}
}

/** The key of one instance's guest-port address. */
export function upstreamKey(instanceId: string, addr: HostAddress): string {
  return `${instanceId}|${addr.host}|${addr.port}`;
}

/** Idle upstream connections by key. */
export class UpstreamPool {
  readonly #idle = new Map<string, Upstream[]>();
  /** After {@link closeAll} (router stopping) nothing is kept any more. */
  #stopped = false;

  /** A kept-alive connection to `key` now owned by `owner`, or undefined. */
  take(key: string, owner: UpstreamOwner): Upstream | undefined {
    const list = this.#idle.get(key);
    while (list && list.length > 0) {
      const up = list.pop()!;
      if (list.length === 0) this.#idle.delete(key);
      if (up.closed) continue;
      up.socket.timeout(0);
      up.owner = owner;
      up.reused = true;
      return up;
    }
    return undefined;
  }

  /** Connect to `addr` for `owner`; rejects when the guest port refuses. */
  async connect(key: string, instanceId: string, addr: HostAddress, owner: UpstreamOwner): Promise<Upstream> {
    const up = new Upstream(key, instanceId);
    up.owner = owner;
    const pool = this;
    up.socket = await Bun.connect<Upstream>({
      hostname: addr.host,
      port: addr.port,
      data: up,
      socket: {
        data: (_s, chunk) => (up.owner ? up.owner.onUpstreamData(up, chunk) : pool.discard(up)),
        drain: () => up.owner?.onUpstreamDrain(up),
        end: () => pool.#closed(up),
        close: (_s, err) => pool.#closed(up, err),
        timeout: () => pool.discard(up),
        error: () => {}, // reported by close
      },
    });
    return up;
  }

  /** Give back a connection whose exchange finished cleanly. */
  release(up: Upstream): void {
    up.owner = null;
    if (up.closed) return;
    if (this.#stopped) return this.discard(up);
    let list = this.#idle.get(up.key);
    if (!list) this.#idle.set(up.key, (list = []));
    if (list.length >= MAX_IDLE) return this.discard(up);
    up.socket.timeout(IDLE_SECONDS);
    up.socket.resume(); // it may have been paused for a slow client; idle, it must notice a close
    list.push(up);
  }

  /** Close every idle connection to `instanceId` (instance removed). */
  closeInstance(instanceId: string): void {
    for (const [key, list] of this.#idle) {
      if (!key.startsWith(`${instanceId}|`)) continue;
      this.#idle.delete(key);
      for (const up of list) this.discard(up);
    }
  }

  /** Close every idle connection. */
  closeAll(): void {
    this.#stopped = true;
    for (const list of this.#idle.values()) for (const up of list) this.discard(up);
    this.#idle.clear();
  }

  /** Close `up` without telling its owner (the owner is the one giving up on it). */
  discard(up: Upstream): void {
    up.owner = null;
    if (!up.closed) up.socket.terminate();
    this.#closed(up);
  }

  #closed(up: Upstream, err?: Error): void {
    if (up.closed) return;
    up.closed = true;
    const owner = up.owner;
    up.owner = null;
    if (owner) owner.onUpstreamClose(up, err);
    else {
      const list = this.#idle.get(up.key);
      const i = list?.indexOf(up) ?? -1;
      if (list && i >= 0) list.splice(i, 1);
      if (list?.length === 0) this.#idle.delete(up.key);
    }
  }
}
