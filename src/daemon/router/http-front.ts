/**
 * @module daemon/router/http-front
 * The router port's listener: a raw TCP front (Bun.listen) that reads only
 * what routing needs. For each request on a client connection it parses the
 * request head (http1.ts), routes it (resolve.ts), wakes the instance,
 * rewrites the head (raw-heads.ts) and then moves the body bytes as they
 * come, counting them to find where the message ends; the response comes back
 * the same way, its head rewritten and its body passed byte for byte. No
 * Request/Response objects, no re-buffered or re-chunked bodies, and the
 * upstream connection stays with the client connection while requests keep
 * going to the same instance (else it returns to the pool, upstream-pool.ts).
 * The guest's own framing reaches the client, Content-Length included.
 *
 * Requests the front does not proxy itself are handed over: the whole client
 * connection, bytes already read included, is spliced to an internal Bun.serve
 * on loopback (router.ts, the fetch-based path of http-proxy.ts and
 * ws-proxy.ts), which then serves the rest of that connection. Handed over:
 * WebSocket and other upgrades, direct port routes (E2B, whose envd port the
 * daemon answers itself), and anything unusual or malformed (see http1.ts),
 * so Bun's parser is the one that rejects it.
 *
 * Semantics kept from the fetch-based path: one activity per request from
 * before the wake until its response is fully sent or the client went away
 * (a client that goes away closes the upstream connection, which cancels the
 * guest's response); 503 when the wake fails; 502 when the guest port does not
 * answer or breaks off before its response head (an idempotent bodiless
 * request on a reused connection is retried once on a fresh one); responses
 * on the shared origin sandboxed; the UI cookie never forwarded. Requests of
 * one connection are answered one at a time (pipelined ones wait in a buffer
 * of bounded size).
 *
 * This file is only the listener; the work is split by concern:
 * front-connection.ts (one client connection's state machine),
 * front-request-forwarding.ts (wake, upstream connection, request bytes),
 * front-response-relay.ts (response head and body, retry, 502),
 * front-handover.ts (the splice to Bun.serve), queued-writes.ts
 * (backpressure) and front-bytes.ts (heads joined with bodies, the router's
 * own error answers).
 */
import type { TCPSocketListener } from "bun";
import { FrontConn } from "./front-connection.ts";
import type { HostAddress, RouterHooks, RouterLog } from "./types.ts";
import { UpstreamPool } from "./upstream-pool.ts";

/** What the front needs from the router. */
export interface FrontContext {
  hooks: RouterHooks;
  log: RouterLog;
  /** `http://HOST:PORT` of the router, for the 404 hint. */
  origin: () => string;
  /** Where handed-over connections go (the internal Bun.serve). */
  inner: () => HostAddress;
}

/** The router port's front listener. */
export class HttpFront {
  readonly pool = new UpstreamPool();
  /** Client IP of each handed-over connection, by the local port of its connection to the internal server. */
  readonly handedOver = new Map<number, string>();
  readonly listener: TCPSocketListener<FrontConn>;

  /** Listen on `host:port`; throws what Bun.listen throws (the router turns it into a Conflict). */
  constructor(host: string, port: number, readonly ctx: FrontContext) {
    const front = this;
    this.listener = Bun.listen<FrontConn>({
      hostname: host,
      port,
      exclusive: true,
      allowHalfOpen: true,
      data: undefined as unknown as FrontConn,
      socket: {
        open(socket) {
          socket.data = new FrontConn(socket, front);
        },
        data: (socket, chunk) => socket.data.onClientData(chunk),
        drain: (socket) => socket.data.onClientDrain(),
        end: (socket) => socket.data.onClientEnd(),
        close: (socket) => socket.data.onClientClose(),
        timeout: (socket) => socket.data.onClientTimeout(),
        error: () => {}, // a broken client is reported by close
      },
    });
  }

  get port(): number {
    return this.listener.port;
  }

  /** Stop listening, close every client connection and every idle upstream one. */
  stop(): void {
    this.listener.stop(true);
    this.pool.closeAll();
  }
}
