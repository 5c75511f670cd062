/**
 * @module daemon/router/front-request-forwarding
 * The request half of one exchange on the router front (http-front.ts): a
 * routed request starts its activity, wakes its instance, takes a pooled
 * upstream connection (or the one kept with the client connection, or a new
 * one), and goes upstream as its rewritten head followed by its body bytes as
 * they come, counted by the body framer so the front knows where the request
 * ends. The head and the body bytes already read leave in one write (one
 * syscall, one loopback packet); the rest is moved with backpressure.
 */
import { type EndActivity, startActivity } from "./activity.ts";
import { errorBytes, headBytes, joinHead } from "./front-bytes.ts";
import type { FrontConn } from "./front-connection.ts";
import { type BodyFramer, MAX_HEAD, type RequestHead } from "./http1.ts";
import { type QuickRequestHead, quickUpstreamRequestHead } from "./quick-heads.ts";
import { upstreamRequestHead } from "./raw-heads.ts";
import type { ResolvedRoute } from "./resolve.ts";
import { causeOf, describeInstance, wakeFailed } from "./responses.ts";
import type { HostAddress } from "./types.ts";
import { type Upstream, upstreamKey } from "./upstream-pool.ts";
import { flushQueue, writeQueued } from "./queued-writes.ts";

/** One request being proxied. */
export interface Exchange {
  head: RequestHead;
  route: ResolvedRoute;
  end: EndActivity;
  /** The instance as error messages name it (made only when one is needed). */
  readonly what: string;
  addr?: HostAddress;
  /** The rewritten head, kept to resend on a retry. */
  upHead?: Buffer | string;
  up?: Upstream;
  request: BodyFramer;
  /** Bytes of the request body already sent (a retry is only possible before any). */
  bodySent: boolean;
  resBuf: Buffer | null;
  response: BodyFramer | "close" | null;
  retried: boolean;
  /** The upstream connection cannot serve another exchange. */
  upDirty: boolean;
}

/** Proxy a routed request (its head already taken off `conn.buf`): start its activity and wake its instance. */
export function startExchange(conn: FrontConn, head: RequestHead, route: ResolvedRoute, request: BodyFramer): void {
  const { ctx } = conn;
  const { instance } = route;
  const ex: Exchange = {
    head,
    route,
    request,
    end: startActivity(ctx.hooks, instance.instanceId, ctx.log),
    get what() {
      return describeInstance(instance);
    },
    bodySent: false,
    resBuf: null,
    response: null,
    retried: false,
    upDirty: false,
  };
  conn.ex = ex;
  const target = { instanceId: instance.instanceId, guestPort: instance.guestPort };
  const wake = ctx.hooks.ensureReachable(target);
  // A hook that knows at once (the instance runs) hands back a settled promise: carry on in this
  // callback, so the request goes upstream without another turn of the event loop.
  if (Bun.peek.status(wake) === "fulfilled") return woken(conn, ex, Bun.peek(wake) as HostAddress);
  wake.then(
    (addr) => woken(conn, ex, addr),
    (err) => {
      if (conn.ex !== ex) return;
      ctx.log("router: wake failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
      conn.failed(ex, errorBytes(wakeFailed(ex.what, target, err), true));
    },
  );
}

function woken(conn: FrontConn, ex: Exchange, addr: HostAddress): void {
  if (conn.ex !== ex) return; // the client went away during the wake
  ex.addr = addr;
  const { head, route } = ex;
  ex.upHead = headBytes("quick" in head ? quickUpstreamRequestHead(head as QuickRequestHead, route.path, conn.clientIp, route.prefix) : upstreamRequestHead(head, route.path, { clientIp: conn.clientIp, host: head.host, prefix: route.prefix }));
  const key = upstreamKey(ex.route.instance.instanceId, addr);
  if (conn.up && (conn.up.key !== key || conn.up.closed)) {
    conn.front.pool.release(conn.up);
    conn.up = null;
  }
  const up = conn.up ?? conn.front.pool.take(key, conn);
  if (up) {
    up.owner = conn;
    return sendRequest(conn, ex, up);
  }
  connectUpstream(conn, ex, key, addr);
}

/** Open a new upstream connection for `ex` (first try, or the retry after a stale keep-alive). */
export function connectUpstream(conn: FrontConn, ex: Exchange, key: string, addr: HostAddress): void {
  conn.front.pool.connect(key, ex.route.instance.instanceId, addr, conn).then(
    (up) => {
      if (conn.ex !== ex) return conn.front.pool.discard(up);
      sendRequest(conn, ex, up);
    },
    (err) => {
      if (conn.ex === ex) conn.upstreamFailed(ex, err);
    },
  );
}

function sendRequest(conn: FrontConn, ex: Exchange, up: Upstream): void {
  conn.up = up;
  ex.up = up;
  // Head and the body bytes already here in one write: each write is a syscall and a loopback packet.
  const buf = conn.buf;
  if (buf && buf.length > 0 && !ex.request.done) {
    const n = feedRequest(conn, ex, buf);
    if (n < 0) return;
    const head = ex.upHead!;
    ex.upHead = typeof head === "string" ? joinHead(head, buf.subarray(0, n)) : Buffer.concat([head, buf.subarray(0, n)]);
    conn.buf = buf.subarray(n);
    ex.bodySent = false; // a retry resends exactly this first write
  }
  writeQueued(up.socket, conn.toUp, ex.upHead!, conn.pauseClientFn);
  pumpBody(conn, ex);
}

/** Move buffered request body bytes upstream. */
export function pumpBody(conn: FrontConn, ex: Exchange): void {
  const buf = conn.buf;
  if (!ex.up || ex.request.done) return requestDone(conn, ex);
  if (buf && buf.length > 0 && conn.toUp.length === 0) {
    const n = feedRequest(conn, ex, buf);
    if (n < 0) return;
    writeQueued(ex.up.socket, conn.toUp, buf.subarray(0, n), conn.pauseClientFn);
    conn.buf = buf.subarray(n);
  }
  if (ex.request.done) requestDone(conn, ex);
  else if (conn.toUp.length === 0) conn.resumeClient();
}

/** Account request body bytes; -1 (after tearing down) when the client's framing is broken. */
export function feedRequest(conn: FrontConn, ex: Exchange, bytes: Uint8Array): number {
  const n = ex.request.feed(bytes, 0);
  if (n instanceof Error) {
    conn.ctx.log("router: malformed request body from client", { instanceId: ex.route.instance.instanceId, error: n.message });
    conn.abort();
    return -1;
  }
  if (n > 0) ex.bodySent = true;
  return n;
}

/** The request body is all upstream: read the client again, and end the exchange if its response is complete too. */
export function requestDone(conn: FrontConn, ex: Exchange): void {
  // The client keeps being read (a close must be noticed); pipelined bytes wait in the buffer.
  if (!conn.buf || conn.buf.length <= MAX_HEAD) conn.resumeClient();
  if (ex.response && ex.response !== "close" && ex.response.done) conn.exchangeDone(ex);
}

/** The upstream took what was queued for it: go on with the request body. */
export function upstreamDrained(conn: FrontConn, up: Upstream): void {
  const ex = conn.ex;
  if (!ex || ex.up !== up || !flushQueue(up.socket, conn.toUp)) return;
  pumpBody(conn, ex);
}
