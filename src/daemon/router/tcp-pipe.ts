/**
 * @module daemon/router/tcp-pipe
 * One raw TCP connection through a `--expose PUBLIC:GUEST` forward: the client
 * socket is paused while the target wakes, then bytes flow both ways.
 *
 * - Backpressure: when a write is short, the rest is queued and the source
 *   socket paused until the destination drains, so a fast sender never fills
 *   the router's memory.
 * - Half-close: a FIN from one side is passed on as a FIN (`shutdown()`) to the
 *   other once the queued bytes are written; the other direction keeps flowing.
 * - A side that closes completely ends the other after its queue is flushed.
 */
import type { Socket } from "bun";
import { type EndActivity, startActivity } from "./activity.ts";
import type { OpenConnections } from "./connections.ts";
import { causeOf, describeInstance } from "./responses.ts";
import type { RouteTarget, RouterHooks, RouterLog } from "./types.ts";

/** Own a copy of a chunk before queueing it (Bun may reuse a data callback's buffer). */
function copy(chunk: Uint8Array): Uint8Array {
  return new Uint8Array(chunk);
}

/** One direction's destination: a socket plus the bytes it has not accepted yet. */
class Side {
  socket: Socket<TcpPipe> | undefined;
  /** Bytes waiting to be written to this side. */
  readonly queue: Uint8Array[] = [];
  /** This side sent FIN (or closed): nothing more will be read from it. */
  readEnded = false;
  /** A FIN was sent to this side. */
  writeShut = false;
  closed = false;
  constructor(readonly name: "client" | "upstream") {}
}

/** What a pipe needs from the forward that accepted it. */
export interface PipeContext {
  hooks: RouterHooks;
  log: RouterLog;
  connections: OpenConnections;
}

/** The state of one forwarded connection, stored as the client socket's `data`. */
export class TcpPipe {
  readonly client = new Side("client");
  readonly upstream = new Side("upstream");
  readonly #end: EndActivity;
  readonly #untrack: () => void;

  constructor(
    client: Socket<TcpPipe>,
    readonly target: RouteTarget,
    readonly publicPort: number,
    readonly ctx: PipeContext,
  ) {
    this.client.socket = client;
    this.#end = startActivity(ctx.hooks, target.instanceId, ctx.log);
    this.#untrack = ctx.connections.add(target.instanceId, () => this.abort());
    client.pause();
    this.#connect().catch((err) => this.#fail("could not reach", err));
  }

  async #connect(): Promise<void> {
    // A refused connection rejects Bun.connect below; #fail (the caller's catch) reports it.
    const addr = await this.ctx.hooks.ensureReachable(this.target).catch((err) => {
      throw new Error(`could not wake ${describeInstance(this.target)} for guest port ${this.target.guestPort}: ${causeOf(err)}`);
    });
    if (this.client.closed) return this.#finishIfDone();
    const pipe = this;
    this.upstream.socket = await Bun.connect<TcpPipe>({
      hostname: addr.host,
      port: addr.port,
      allowHalfOpen: true,
      data: this,
      socket: {
        data: (_s, chunk) => pipe.#onData(pipe.upstream, pipe.client, chunk),
        drain: () => pipe.#onDrain(pipe.upstream, pipe.client),
        end: () => pipe.#onEnd(pipe.upstream, pipe.client),
        close: (_s, err) => pipe.#onClose(pipe.upstream, pipe.client, err),
        error: (_s, err) => pipe.ctx.log("router: TCP forward upstream socket error", { instanceId: pipe.target.instanceId, publicPort: pipe.publicPort, error: causeOf(err) }),
      },
    });
    if (this.client.closed) {
      this.upstream.socket.end();
      return;
    }
    // Bytes and a FIN the client sent while the target woke.
    this.#onDrain(this.upstream, this.client);
    this.client.socket?.resume();
  }

  /** Handlers of the client socket, called by the forward's listener. */
  onClientData(chunk: Uint8Array): void {
    this.#onData(this.client, this.upstream, chunk);
  }
  onClientDrain(): void {
    this.#onDrain(this.client, this.upstream);
  }
  onClientEnd(): void {
    this.#onEnd(this.client, this.upstream);
  }
  onClientClose(err?: Error): void {
    this.#onClose(this.client, this.upstream, err);
  }

  /** Close both sides at once (instance removed, router stopping). */
  abort(): void {
    this.client.socket?.terminate();
    this.upstream.socket?.terminate();
  }

  #onData(from: Side, to: Side, chunk: Uint8Array): void {
    if (to.closed) {
      // Nobody is left to read this; `from` already got its FIN and keeps talking.
      from.socket?.terminate();
      return;
    }
    if (!to.socket || to.queue.length > 0) {
      to.queue.push(copy(chunk));
      from.socket?.pause();
      return;
    }
    const n = to.socket.write(chunk);
    if (n < chunk.length) {
      to.queue.push(copy(chunk.subarray(Math.max(n, 0))));
      from.socket?.pause();
    }
  }

  /** `to` can take more bytes: write the queue, then pass on a pending FIN or resume the source. */
  #onDrain(to: Side, from: Side): void {
    const socket = to.socket;
    if (!socket || to.closed) return;
    while (to.queue.length > 0) {
      const head = to.queue[0]!;
      const n = socket.write(head);
      if (n < head.length) {
        to.queue[0] = head.subarray(Math.max(n, 0));
        return;
      }
      to.queue.shift();
    }
    if (from.closed) this.#shut(to, true);
    else if (from.readEnded) this.#shut(to, false);
    else from.socket?.resume();
  }

  #onEnd(from: Side, to: Side): void {
    from.readEnded = true;
    if (to.socket && to.queue.length === 0) this.#shut(to, false);
  }

  #onClose(side: Side, other: Side, err?: Error): void {
    if (side.closed) return;
    side.closed = true;
    side.readEnded = true;
    if (err) this.ctx.log("router: TCP forward connection closed with an error", { side: side.name, instanceId: this.target.instanceId, publicPort: this.publicPort, error: causeOf(err) });
    if (other.socket && !other.closed && other.queue.length === 0) this.#shut(other, true);
    this.#finishIfDone();
  }

  /** Send FIN to `side` (`full`: also stop reading, the peer is gone). */
  #shut(side: Side, full: boolean): void {
    const socket = side.socket;
    if (!socket || side.closed) return;
    if (full) socket.end();
    else if (!side.writeShut) socket.shutdown();
    side.writeShut = true;
  }

  #finishIfDone(): void {
    const upstreamDone = this.upstream.closed || !this.upstream.socket;
    if (!this.client.closed || !upstreamDone) return;
    this.#untrack();
    this.#end();
  }

  #fail(what: string, err: unknown): void {
    this.ctx.log(`router: TCP forward ${what} its target`, { instanceId: this.target.instanceId, guestPort: this.target.guestPort, publicPort: this.publicPort, error: causeOf(err) });
    this.upstream.closed = true;
    if (this.client.closed) this.#finishIfDone();
    else this.client.socket?.end(); // the client's close handler finishes the accounting
  }
}
