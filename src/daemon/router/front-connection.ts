/**
 * @module daemon/router/front-connection
 * One client connection on the router's raw HTTP/1.1 front (http-front.ts):
 * the state machine that reads request heads, decides per request whether
 * the front proxies it (front-request-forwarding.ts, then
 * front-response-relay.ts) or hands the whole connection over to Bun.serve
 * (front-handover.ts), answers routing errors itself, and enforces what holds
 * for the connection as a whole: requests answered one at a time (pipelined
 * ones wait in a buffer of bounded size, the client paused past it), the idle
 * timeout between requests, backpressure both ways, and teardown (a client
 * that goes away closes the upstream connection mid-exchange, which cancels
 * the guest's response).
 *
 * States: "head" (waiting for the next request head), "busy" (one exchange
 * under way, or the router's own answer being written), "handover" (spliced
 * to Bun.serve for good), "closed". The fields the exchange modules share are
 * plain properties, not #private, so those modules can be functions over this
 * state; nothing outside the router front uses them.
 */
import type { Socket } from "bun";
import { AppError } from "../../api/errors.ts";
import { concat, errorBytes } from "./front-bytes.ts";
import { Handover } from "./front-handover.ts";
import { type Exchange, feedRequest, pumpBody, requestDone, startExchange, upstreamDrained } from "./front-request-forwarding.ts";
import { relayResponseData, relayUpstreamClose } from "./front-response-relay.ts";
import type { FrontContext, HttpFront } from "./http-front.ts";
import { ChunkedFramer, headEnd, headerValue, LengthFramer, MAX_HEAD, parseRequestHead } from "./http1.ts";
import { quickRequestHead } from "./quick-heads.ts";
import { directRoute, resolveRoute } from "./resolve.ts";
import { causeOf, upstreamFailed } from "./responses.ts";
import { flushQueue, writeQueued } from "./queued-writes.ts";
import type { Upstream, UpstreamOwner } from "./upstream-pool.ts";

/** Seconds a client connection may sit idle between requests (Bun.serve's default is 10). */
const IDLE_SECONDS = 60;

/** One client connection on the router port. */
export class FrontConn implements UpstreamOwner {
  /** Client bytes read and not yet passed on (pipelined requests, body bytes waiting for the upstream). */
  buf: Buffer | null = null;
  state: "head" | "busy" | "handover" | "closed" = "head";
  /** The exchange under way. */
  ex: Exchange | null = null;
  /** The upstream connection kept with this client connection between exchanges. */
  up: Upstream | null = null;
  /** Bytes queued for the current upstream connection. */
  readonly toUp: Uint8Array[] = [];
  /** The client half-closed, or the connection closes after the current exchange. */
  clientEnded = false;
  /** The client's address (read once: the getter makes a new string each time). */
  readonly clientIp: string;
  readonly pauseClientFn = () => this.#pauseClient();

  readonly #toClient: Uint8Array[] = [];
  #clientPaused = false;
  #closeWhenFlushed = false;
  #handover: Handover | null = null;
  /** `buf` is (a view of) Bun's read buffer, valid only during the data callback. */
  #borrowed = false;
  /** When the last exchange ended (for the idle timeout). */
  #lastActive = performance.now();
  readonly #pauseSourceFn = () => (this.state === "handover" ? this.#handover?.pause() : this.ex?.up?.socket.pause());

  constructor(
    readonly socket: Socket<FrontConn>,
    readonly front: HttpFront,
  ) {
    this.clientIp = socket.remoteAddress;
    socket.timeout(IDLE_SECONDS);
  }

  get ctx(): FrontContext {
    return this.front.ctx;
  }

  // ---- client side ----

  onClientData(chunk: Uint8Array): void {
    if (this.state === "closed") return;
    if (this.state === "handover") {
      if (this.#handover?.forward(chunk)) return;
      this.buf = concat(this.buf, chunk);
      if (this.buf.length > MAX_HEAD) this.#pauseClient();
      return;
    }
    const ex = this.ex;
    if (ex?.up && !ex.request.done && this.toUp.length === 0 && (this.buf === null || this.buf.length === 0)) {
      // The hot path of an upload: body bytes straight through.
      const n = feedRequest(this, ex, chunk);
      if (n < 0) return;
      writeQueued(ex.up.socket, this.toUp, n === chunk.length ? chunk : chunk.subarray(0, n), this.pauseClientFn);
      if (n < chunk.length) this.buf = concat(null, chunk.subarray(n));
      if (ex.request.done) requestDone(this, ex);
      return;
    }
    if (this.buf && this.buf.length > 0) this.buf = Buffer.concat([this.buf, chunk]);
    else {
      // Parse in place: the usual request arrives whole in one read and is never copied.
      this.buf = chunk as Buffer;
      this.#borrowed = true;
    }
    if (this.state === "head") this.#next();
    else if (ex?.up) pumpBody(this, ex);
    if (this.#borrowed) {
      this.#borrowed = false;
      if (this.buf && this.buf.length > 0) this.buf = Buffer.from(this.buf);
    }
    if (this.buf && this.buf.length > MAX_HEAD) this.#pauseClient();
  }

  onClientDrain(): void {
    if (!flushQueue(this.socket, this.#toClient)) return;
    if (this.#closeWhenFlushed) return void this.socket.end();
    if (this.state === "handover") this.#handover?.resume();
    else (this.ex?.up ?? this.up)?.socket.resume();
  }

  onClientEnd(): void {
    this.clientEnded = true;
    if (this.state === "handover") return void this.#handover?.shutdown();
    const ex = this.ex;
    if (!ex) return this.closeClient();
    // A client that half-closes before its request body is complete cannot be answered sensibly.
    if (!ex.request.done) this.abort();
  }

  onClientClose(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.#toClient.length = 0;
    const ex = this.ex;
    this.ex = null;
    if (ex) ex.end();
    if (this.up) {
      // Mid-exchange the guest's response is cut off by closing its connection (that cancels its stream).
      if (ex) this.front.pool.discard(this.up);
      else this.front.pool.release(this.up);
      this.up = null;
    }
    if (ex?.up && ex.up !== this.up) this.front.pool.discard(ex.up);
    this.#handover?.end();
  }

  onClientTimeout(): void {
    const idle = this.state === "head" && !this.ex && performance.now() - this.#lastActive >= (IDLE_SECONDS - 1) * 1000;
    if (idle) this.socket.end();
    else if (this.state !== "closed") this.socket.timeout(IDLE_SECONDS);
  }

  #pauseClient(): void {
    if (this.#clientPaused) return;
    this.#clientPaused = true;
    this.socket.pause();
  }

  /** Read the client again (after backpressure or a full pipeline buffer). */
  resumeClient(): void {
    if (!this.#clientPaused || this.state === "closed") return;
    this.#clientPaused = false;
    this.socket.resume();
  }

  /** Close after what is queued for the client has been written. */
  closeClient(): void {
    if (this.state === "closed") return;
    if (this.#toClient.length === 0) this.socket.end();
    else this.#closeWhenFlushed = true;
  }

  /** Tear everything down now (a broken exchange). */
  abort(): void {
    this.socket.terminate();
    this.onClientClose();
  }

  /** Write to the client; what it does not take is queued and the source (upstream or Bun.serve) paused. */
  toClientWrite(bytes: Uint8Array): void {
    writeQueued(this.socket, this.#toClient, bytes, this.#pauseSourceFn);
  }

  // ---- upstream events (UpstreamOwner) ----

  onUpstreamData(up: Upstream, chunk: Uint8Array): void {
    relayResponseData(this, up, chunk);
  }

  onUpstreamDrain(up: Upstream): void {
    upstreamDrained(this, up);
  }

  onUpstreamClose(up: Upstream, err?: Error): void {
    relayUpstreamClose(this, up, err);
  }

  // ---- requests ----

  /** Parse and start the next buffered request, if its head is complete. */
  #next(): void {
    const buf = this.buf;
    if (this.state !== "head" || !buf || buf.length === 0) return;
    const end = headEnd(buf);
    if (end < 0) {
      if (buf.length > MAX_HEAD || buf.includes("\n\n")) this.#handOver();
      return;
    }
    const text = buf.toString("latin1", 0, end - 4);
    // The common head is checked and passed on without being split into header objects (quick-heads.ts).
    const head = quickRequestHead(text) ?? parseRequestHead(text);
    if (!head) return this.#handOver();
    const ctx = this.ctx;
    const served = ctx.hooks.servedInstances();
    const get = (name: string) => headerValue(head.headers, name);
    const direct = directRoute({ get }, head.target, served, ctx.hooks.instanceNamed?.bind(ctx.hooks) ?? (() => undefined));
    // Direct port routes go to Bun.serve: the daemon answers some of them itself (hooks.local).
    if (direct && !(direct instanceof AppError)) return this.#handOver();
    const route = direct ?? resolveRoute(served, head.host, head.target, ctx.origin());
    // A request that came alone in its read leaves nothing behind (no view to make).
    this.buf = end === buf.length ? null : buf.subarray(end);
    const request = head.body.kind === "chunked" ? new ChunkedFramer() : new LengthFramer(head.body.length);
    this.state = "busy";
    if (route instanceof AppError) {
      // Answered here; a request body nobody will read closes the connection after the answer.
      const close = !request.done || head.close;
      return this.#answered(errorBytes(route, close), close);
    }
    startExchange(this, head, route, request);
  }

  /** The guest port refused or broke the exchange before a response head reached the client: 502. */
  upstreamFailed(ex: Exchange, err: unknown): void {
    const { instance } = ex.route;
    const target = { instanceId: instance.instanceId, guestPort: instance.guestPort };
    this.ctx.log("router: upstream request failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
    if (ex.response !== null) return this.abort();
    this.failed(ex, errorBytes(upstreamFailed(ex.what, target, ex.addr!, err), true));
  }

  /** Answer `ex` with one of the router's own responses and end it. */
  failed(ex: Exchange, bytes: Buffer): void {
    if (ex.up) {
      this.front.pool.discard(ex.up);
      if (this.up === ex.up) this.up = null;
    }
    this.toUp.length = 0;
    ex.end();
    this.ex = null;
    this.#answered(bytes, true);
  }

  /** After a response the router wrote itself: close, or go on with the next request. */
  #answered(bytes: Buffer, close: boolean): void {
    this.toClientWrite(bytes);
    if (close || this.clientEnded) return this.closeClient();
    this.#nextRequest();
  }

  /** The response was fully passed on (`closed`: delimited by the guest closing). */
  exchangeDone(ex: Exchange, closed = false): void {
    if (this.ex !== ex) return;
    this.ex = null;
    ex.end();
    const up = ex.up!;
    if (ex.upDirty || closed) {
      if (!up.closed) this.front.pool.discard(up);
      if (this.up === up) this.up = null;
    } else up.reused = true;
    if (ex.head.close || closed || this.clientEnded) return this.closeClient();
    this.#nextRequest();
  }

  /** Back to reading request heads; a pipelined one may already be buffered. */
  #nextRequest(): void {
    this.state = "head";
    this.#lastActive = performance.now();
    this.resumeClient();
    this.#next();
  }

  /** Splice this connection, from the current request on, to the internal Bun.serve. */
  #handOver(): void {
    this.state = "handover";
    if (this.up) {
      this.front.pool.release(this.up);
      this.up = null;
    }
    this.#handover = new Handover(this);
  }
}
