/**
 * @module daemon/router/front-response-relay
 * The response half of one exchange on the router front (http-front.ts): the
 * guest's response head is parsed and rewritten (raw-heads.ts; sandboxed on
 * the router's shared origin, see origin-isolation.ts), interim 1xx heads are
 * passed on, and the body goes to the client byte for byte, its own framing
 * (Content-Length, chunked, or until close) followed only to find its end.
 * An upstream that closes or breaks before its response head gets a 502, or
 * one retry on a fresh connection when the request was idempotent, bodiless
 * and sent on a reused keep-alive connection; one that breaks mid-body cuts
 * the client connection (the client must not mistake half a body for all).
 */
import type { FrontConn } from "./front-connection.ts";
import { joinHeadForWrite } from "./front-bytes.ts";
import { connectUpstream, type Exchange } from "./front-request-forwarding.ts";
import { ChunkedFramer, headEnd, MAX_HEAD, parseResponseHead, type ResponseHead, responseFraming } from "./http1.ts";
import { type QuickResponseHead, quickDownstreamResponseHead, quickResponseHead } from "./quick-heads.ts";
import { downstreamResponseHead } from "./raw-heads.ts";
import { causeOf } from "./responses.ts";
import type { Upstream } from "./upstream-pool.ts";

/** The empty rest of a read that held only a head. */
const NOTHING = Buffer.alloc(0);

/** Methods safe to send twice when a pooled upstream connection turned out to be dead. */
const RETRYABLE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Bytes from the guest on `up`. */
export function relayResponseData(conn: FrontConn, up: Upstream, chunk: Uint8Array): void {
  const ex = conn.ex;
  if (!ex || ex.up !== up) return conn.front.pool.discard(up); // nothing was asked of it
  if (ex.response === null) return responseHead(conn, ex, ex.resBuf ? Buffer.concat([ex.resBuf, chunk]) : (chunk as Buffer), ex.resBuf !== null);
  responseBody(conn, ex, chunk);
}

/** `owned`: `buf` is the router's; else it is Bun's read buffer, to copy before keeping. */
function responseHead(conn: FrontConn, ex: Exchange, buf: Buffer, owned: boolean): void {
  for (;;) {
    const end = headEnd(buf);
    if (end < 0) {
      if (buf.length > MAX_HEAD) return conn.upstreamFailed(ex, new Error(`response head longer than ${MAX_HEAD} bytes`));
      ex.resBuf = owned ? buf : Buffer.from(buf);
      return;
    }
    const text = buf.toString("latin1", 0, end - 4);
    const head = quickResponseHead(text, ex.route.prefix) ?? parseResponseHead(text);
    if (!head) return conn.upstreamFailed(ex, new Error("malformed HTTP response head"));
    buf = end === buf.length ? NOTHING : buf.subarray(end);
    if (head.status >= 200 || head.status === 101) {
      if (head.status === 101) return conn.upstreamFailed(ex, new Error("101 Switching Protocols to a request that asked for no upgrade"));
      return responseStart(conn, ex, head, buf);
    }
    conn.toClientWrite(Buffer.from(downstreamResponseHead(head, null, false), "latin1")); // 100 Continue, 103 Early Hints
  }
}

function responseStart(conn: FrontConn, ex: Exchange, head: ResponseHead, rest: Buffer): void {
  const framing = responseFraming(head, ex.head.method);
  if (framing instanceof Error) return conn.upstreamFailed(ex, framing);
  ex.resBuf = null;
  ex.response = framing;
  if (head.close) ex.upDirty = true;
  // Instances reached on the router's own origin must not share it in the browser (origin-isolation.ts).
  const isolate = ex.route.rule === "host" ? null : { prefix: ex.route.prefix };
  const headText = "quick" in head ? quickDownstreamResponseHead(head as QuickResponseHead, isolate !== null) : downstreamResponseHead(head, isolate, framing instanceof ChunkedFramer);
  if (rest.length > 0 || (framing !== "close" && framing.done)) responseBody(conn, ex, rest, headText);
  else conn.toClientWrite(Buffer.from(headText, "latin1"));
}

/** Pass on response body bytes (after `head`, written with them in one write). */
function responseBody(conn: FrontConn, ex: Exchange, chunk: Uint8Array, head?: string): void {
  const framing = ex.response!;
  if (framing === "close") return conn.toClientWrite(head !== undefined ? joinHeadForWrite(head, chunk) : chunk);
  const n = framing.feed(chunk, 0);
  if (n instanceof Error) {
    conn.ctx.log("router: upstream response broke mid-body", { instanceId: ex.route.instance.instanceId, url: ex.route.path, error: n.message });
    return conn.abort();
  }
  const body = n === chunk.length ? chunk : chunk.subarray(0, n);
  conn.toClientWrite(head !== undefined ? joinHeadForWrite(head, body) : body);
  if (!framing.done) return;
  if (n < chunk.length) ex.upDirty = true; // bytes after the response: the guest is out of step
  if (ex.request.done) return conn.exchangeDone(ex);
  // The guest answered before the request body was complete: finish here and close the connection.
  ex.upDirty = true;
  conn.clientEnded = true;
  conn.exchangeDone(ex);
}

/** The guest closed `up` (or it broke, `err`): the end of a close-delimited body, a retry, a 502 or a cut. */
export function relayUpstreamClose(conn: FrontConn, up: Upstream, err?: Error): void {
  if (conn.up === up) conn.up = null;
  const ex = conn.ex;
  if (!ex || ex.up !== up) return;
  ex.upDirty = true;
  if (ex.response === "close") return conn.exchangeDone(ex, true);
  if (ex.response !== null) {
    conn.ctx.log("router: upstream response broke mid-body", { instanceId: ex.route.instance.instanceId, url: ex.route.path, error: err ? causeOf(err) : "connection closed" });
    ex.end();
    conn.ex = null;
    return conn.closeClient();
  }
  if (up.reused && !ex.retried && !ex.bodySent && ex.request.done && RETRYABLE.has(ex.head.method)) {
    // A keep-alive connection the guest closed just as it was reused: retry once on a fresh one.
    conn.ctx.log("router: retrying idempotent request after upstream error", { instanceId: ex.route.instance.instanceId, method: ex.head.method, error: err ? causeOf(err) : "connection closed" });
    ex.retried = true;
    ex.up = undefined;
    ex.resBuf = null;
    conn.toUp.length = 0;
    return connectUpstream(conn, ex, up.key, ex.addr!);
  }
  conn.upstreamFailed(ex, err ?? new Error("the guest closed the connection before answering"));
}
