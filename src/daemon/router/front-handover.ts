/**
 * @module daemon/router/front-handover
 * Hand-over of a client connection from the raw router front to the internal
 * Bun.serve on loopback (router.ts): everything the front does not proxy
 * itself (upgrades, direct port routes, unusual or malformed requests, see
 * http-front.ts) is spliced there whole, from the current request on, bytes
 * already read included, so Bun's parser and the fetch-based path serve the
 * rest of that connection. The client IP is recorded by the local port of
 * the spliced connection (HttpFront.handedOver) so the internal server can
 * still put the real client in X-Forwarded-For.
 */
import type { Socket } from "bun";
import type { FrontConn } from "./front-connection.ts";
import { causeOf } from "./responses.ts";
import { flushQueue, writeQueued } from "./queued-writes.ts";

/** The splice of one client connection to the internal Bun.serve. */
export class Handover {
  #inner: Socket<undefined> | undefined;
  readonly #toInner: Uint8Array[] = [];

  /** Connect to the internal server; until connected, the client's bytes wait in `conn.buf`. */
  constructor(readonly conn: FrontConn) {
    const { host, port } = conn.ctx.inner();
    const queue = this.#toInner;
    Bun.connect<undefined>({
      hostname: host,
      port,
      allowHalfOpen: true,
      data: undefined,
      socket: {
        data: (_s, chunk) => conn.toClientWrite(chunk),
        drain: (s) => {
          if (flushQueue(s, queue)) conn.resumeClient();
        },
        end: () => conn.closeClient(),
        close: (s) => {
          conn.front.handedOver.delete(s.localPort);
          conn.closeClient();
        },
        error: () => {},
      },
    }).then(
      (inner) => {
        if (conn.state === "closed") return void inner.end();
        conn.front.handedOver.set(inner.localPort, conn.clientIp);
        this.#inner = inner;
        const buf = conn.buf;
        conn.buf = null;
        if (buf) writeQueued(inner, queue, buf, conn.pauseClientFn);
        if (queue.length === 0) conn.resumeClient();
        if (conn.clientEnded) inner.shutdown();
      },
      (err) => {
        conn.ctx.log("router: internal handover failed", { error: causeOf(err) });
        conn.abort();
      },
    );
  }

  /** Pass client bytes on; false while not connected yet (the caller keeps them). */
  forward(chunk: Uint8Array): boolean {
    if (!this.#inner) return false;
    writeQueued(this.#inner, this.#toInner, chunk, this.conn.pauseClientFn);
    return true;
  }

  /** The client is not keeping up: stop reading the internal server. */
  pause(): void {
    this.#inner?.pause();
  }

  resume(): void {
    this.#inner?.resume();
  }

  /** The client half-closed: pass it on. */
  shutdown(): void {
    this.#inner?.shutdown();
  }

  /** The client went away. */
  end(): void {
    this.#inner?.end();
  }
}
