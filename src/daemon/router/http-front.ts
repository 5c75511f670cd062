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
 * (backpressure), front-bytes.ts (heads joined with bodies, the router's
 * own error answers) and quick-heads.ts (the common head checked and passed
 * on without being split into header objects; others take http1.ts and
 * raw-heads.ts).
 *
 * Where the cost goes (issue 19; bench/router.ts on 2 shared cores, four
 * runs before and four after quick-heads.ts and the reused response buffer,
 * 2026-12-02, while other work kept the load at 5-14: rates swing from run
 * to run, the CPU figures much less):
 * - CPU of the router process per small GET: 60-72 us before, 40-70 after
 *   with 1 client; 35-45 before, 27-33 after with 16. The raw TCP forward in
 *   the same process: 27-37 and 17-32 us; haproxy (below) 37-88 and 20-28.
 * - Syscalls are not the difference: strace counts the same per request
 *   through the front as through the TCP forward (one recvfrom, one sendto
 *   and one epoll_pwait2 each way). Parsing and rewriting both heads cost
 *   8.5 us of JS per request with the full parse, 4.8 us on the fast path
 *   (in-process, 100k varied heads). The rest of the gap to the TCP forward
 *   is Bun's runtime per JS object, the GC above all (madvise: 890 calls per
 *   10k requests through the front, 47 through the TCP forward).
 * - The download's syscalls are the TCP forward's too (about 512 KB per
 *   recvfrom and per sendto, one short write in sixty) and so is its CPU per
 *   GB (0.7-0.9 s for both), so what is left to direct there is the hop itself.
 * - C relays in the same rounds (socat; haproxy in HTTP mode, one thread)
 *   reach 0.35-0.77x of direct for small GETs, +36-101 us of p50 and
 *   0.27-0.82x for the download: no userspace hop gets near the 0.9x target
 *   while client, proxy and guest share 2 cores. Closing that would take
 *   keeping the bytes in the kernel (splice(2), which Bun's sockets do not
 *   offer) or not being a third process.
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
