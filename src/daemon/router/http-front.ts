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
 */
import type { Socket, TCPSocketListener } from "bun";
import { STATUS_CODES } from "node:http";
import { AppError } from "../../api/errors.ts";
import { type EndActivity, startActivity } from "./activity.ts";
import { type BodyFramer, headEnd, headerValue, LengthFramer, ChunkedFramer, MAX_HEAD, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead, responseFraming } from "./http1.ts";
import { downstreamResponseHead, upstreamRequestHead } from "./raw-heads.ts";
import { directRoute, type ResolvedRoute, resolveRoute } from "./resolve.ts";
import { causeOf, describeInstance, upstreamFailed, wakeFailed } from "./responses.ts";
import type { HostAddress, RouterHooks, RouterLog } from "./types.ts";
import { type Upstream, type UpstreamOwner, UpstreamPool, upstreamKey } from "./upstream-pool.ts";

/** Seconds a client connection may sit idle between requests (Bun.serve's default is 10). */
const IDLE_SECONDS = 60;
/** Methods safe to send twice when a pooled upstream connection turned out to be dead. */
const RETRYABLE = new Set(["GET", "HEAD", "OPTIONS"]);

/** What the front needs from the router. */
export interface FrontContext {
  hooks: RouterHooks;
  log: RouterLog;
  /** `http://HOST:PORT` of the router, for the 404 hint. */
  origin: () => string;
  /** Where handed-over connections go (the internal Bun.serve). */
  inner: () => HostAddress;
}

/** One request being proxied. */
interface Exchange {
  head: RequestHead;
  route: ResolvedRoute;
  end: EndActivity;
  what: string;
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

function concat(a: Buffer | null, b: Uint8Array): Buffer {
  return a && a.length > 0 ? Buffer.concat([a, b]) : Buffer.from(b);
}

const ASCII = /^[\x00-\x7f]*$/;

/** A head (latin1 text) and the body bytes after it, in one buffer: one write, one syscall, one packet. */
function joinHead(head: string, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, "latin1");
  out.set(body, head.length);
  return out;
}

/** The HTTP/1.1 bytes of one of the router's own error answers. */
function errorBytes(err: AppError, close: boolean): Buffer {
  const body = JSON.stringify(err.toJSON());
  const head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\ncontent-type: application/json;charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? "connection: close\r\n" : ""}\r\n`;
  return Buffer.from(head + body);
}

/** One client connection on the router port. */
class FrontConn implements UpstreamOwner {
  #buf: Buffer | null = null;
  #state: "head" | "busy" | "handover" | "closed" = "head";
  #ex: Exchange | null = null;
  /** The upstream connection kept with this client connection between exchanges. */
  #up: Upstream | null = null;
  readonly #toClient: Uint8Array[] = [];
  readonly #toUp: Uint8Array[] = [];
  #clientPaused = false;
  #closeWhenFlushed = false;
  #clientEnded = false;
  #inner: Socket<undefined> | undefined;
  readonly #toInner: Uint8Array[] = [];
  /** `#buf` is (a view of) Bun's read buffer, valid only during the data callback. */
  #borrowed = false;
  /** When the last exchange ended (for the idle timeout). */
  #lastActive = performance.now();
  readonly #pauseClientFn = () => this.#pauseClient();
  readonly #pauseSourceFn = () => (this.#state === "handover" ? this.#inner?.pause() : this.#ex?.up?.socket.pause());

  /** The client's address (read once: the getter makes a new string each time). */
  readonly #clientIp: string;

  constructor(
    readonly socket: Socket<FrontConn>,
    readonly front: HttpFront,
  ) {
    this.#clientIp = socket.remoteAddress;
    socket.timeout(IDLE_SECONDS);
  }

  get #ctx(): FrontContext {
    return this.front.ctx;
  }

  // ---- client side ----

  onClientData(chunk: Uint8Array): void {
    if (this.#state === "closed") return;
    if (this.#state === "handover") {
      if (this.#inner) return void this.#write(this.#inner, this.#toInner, chunk, this.#pauseClientFn);
      this.#buf = concat(this.#buf, chunk);
      if (this.#buf.length > MAX_HEAD) this.#pauseClient();
      return;
    }
    const ex = this.#ex;
    if (ex?.up && !ex.request.done && this.#toUp.length === 0 && (this.#buf === null || this.#buf.length === 0)) {
      // The hot path of an upload: body bytes straight through.
      const n = this.#feedRequest(ex, chunk);
      if (n < 0) return;
      this.#write(ex.up.socket, this.#toUp, n === chunk.length ? chunk : chunk.subarray(0, n), this.#pauseClientFn);
      if (n < chunk.length) this.#buf = concat(null, chunk.subarray(n));
      if (ex.request.done) this.#requestDone(ex);
      return;
    }
    if (this.#buf && this.#buf.length > 0) this.#buf = Buffer.concat([this.#buf, chunk]);
    else {
      // Parse in place: the usual request arrives whole in one read and is never copied.
      this.#buf = chunk as Buffer;
      this.#borrowed = true;
    }
    if (this.#state === "head") this.#next();
    else if (ex?.up) this.#pumpBody(ex);
    if (this.#borrowed) {
      this.#borrowed = false;
      if (this.#buf && this.#buf.length > 0) this.#buf = Buffer.from(this.#buf);
    }
    if (this.#buf && this.#buf.length > MAX_HEAD) this.#pauseClient();
  }

  onClientDrain(): void {
    if (!this.#flush(this.socket, this.#toClient)) return;
    if (this.#closeWhenFlushed) return void this.socket.end();
    if (this.#state === "handover") this.#inner?.resume();
    else (this.#ex?.up ?? this.#up)?.socket.resume();
  }

  onClientEnd(): void {
    this.#clientEnded = true;
    if (this.#state === "handover") return void this.#inner?.shutdown();
    const ex = this.#ex;
    if (!ex) return this.#closeClient();
    // A client that half-closes before its request body is complete cannot be answered sensibly.
    if (!ex.request.done) this.#abort();
  }

  onClientClose(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#toClient.length = 0;
    const ex = this.#ex;
    this.#ex = null;
    if (ex) ex.end();
    if (this.#up) {
      // Mid-exchange the guest's response is cut off by closing its connection (that cancels its stream).
      if (ex) this.front.pool.discard(this.#up);
      else this.front.pool.release(this.#up);
      this.#up = null;
    }
    if (ex?.up && ex.up !== this.#up) this.front.pool.discard(ex.up);
    this.#inner?.end();
  }

  onClientTimeout(): void {
    const idle = this.#state === "head" && !this.#ex && performance.now() - this.#lastActive >= (IDLE_SECONDS - 1) * 1000;
    if (idle) this.socket.end();
    else if (this.#state !== "closed") this.socket.timeout(IDLE_SECONDS);
  }

  #pauseClient(): void {
    if (this.#clientPaused) return;
    this.#clientPaused = true;
    this.socket.pause();
  }

  #resumeClient(): void {
    if (!this.#clientPaused || this.#state === "closed") return;
    this.#clientPaused = false;
    this.socket.resume();
  }

  /** Close after what is queued for the client has been written. */
  #closeClient(): void {
    if (this.#state === "closed") return;
    if (this.#toClient.length === 0) this.socket.end();
    else this.#closeWhenFlushed = true;
  }

  /** Tear everything down now (a broken exchange). */
  #abort(): void {
    this.socket.terminate();
    this.onClientClose();
  }

  // ---- writes with backpressure ----

  /** Write `bytes` to `socket`, queueing what it does not take; `onFull` runs when something was queued. */
  #write(socket: Socket<any>, queue: Uint8Array[], bytes: Uint8Array | string, onFull: () => void): void {
    if (bytes.length === 0) return;
    // Strings are ASCII only (checked by the caller): their length is their byte count.
    if (queue.length > 0) {
      queue.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : new Uint8Array(bytes));
      return;
    }
    const n = socket.write(bytes);
    if (n < bytes.length) {
      queue.push(typeof bytes === "string" ? Buffer.from(bytes.slice(Math.max(n, 0)), "latin1") : new Uint8Array(bytes.subarray(Math.max(n, 0))));
      onFull();
    }
  }

  /** Write what `queue` holds; true when it is empty afterwards. */
  #flush(socket: Socket<any>, queue: Uint8Array[]): boolean {
    while (queue.length > 0) {
      const head = queue[0]!;
      const n = socket.write(head);
      if (n < head.length) {
        queue[0] = head.subarray(Math.max(n, 0));
        return false;
      }
      queue.shift();
    }
    return true;
  }

  #toClientWrite(bytes: Uint8Array): void {
    this.#write(this.socket, this.#toClient, bytes, this.#pauseSourceFn);
  }

  // ---- requests ----

  /** Parse and start the next buffered request, if its head is complete. */
  #next(): void {
    const buf = this.#buf;
    if (this.#state !== "head" || !buf || buf.length === 0) return;
    const end = headEnd(buf);
    if (end < 0) {
      if (buf.length > MAX_HEAD || buf.includes("\n\n")) this.#handover();
      return;
    }
    const head = parseRequestHead(buf.toString("latin1", 0, end - 4));
    if (!head) return this.#handover();
    const ctx = this.#ctx;
    const served = ctx.hooks.servedInstances();
    const get = (name: string) => headerValue(head.headers, name);
    const direct = directRoute({ get }, head.target, served, ctx.hooks.instanceNamed?.bind(ctx.hooks) ?? (() => undefined));
    // Direct port routes go to Bun.serve: the daemon answers some of them itself (hooks.local).
    if (direct && !(direct instanceof AppError)) return this.#handover();
    const route = direct ?? resolveRoute(served, head.host, head.target, ctx.origin());
    this.#buf = buf.subarray(end);
    const request = head.body.kind === "chunked" ? new ChunkedFramer() : new LengthFramer(head.body.length);
    if (route instanceof AppError) {
      // Answered here; a request body nobody will read closes the connection after the answer.
      this.#state = "busy";
      const close = !request.done || head.close;
      return this.#answered(errorBytes(route, close), close);
    }
    this.#state = "busy";
    const { instance } = route;
    const ex: Exchange = {
      head,
      route,
      request,
      end: startActivity(ctx.hooks, instance.instanceId, ctx.log),
      what: describeInstance(instance),
      bodySent: false,
      resBuf: null,
      response: null,
      retried: false,
      upDirty: false,
    };
    this.#ex = ex;
    const target = { instanceId: instance.instanceId, guestPort: instance.guestPort };
    const wake = ctx.hooks.ensureReachable(target);
    // A hook that knows at once (the instance runs) hands back a settled promise: carry on in this
    // callback, so the request goes upstream without another turn of the event loop.
    if (Bun.peek.status(wake) === "fulfilled") return this.#woken(ex, Bun.peek(wake) as HostAddress);
    wake.then(
      (addr) => this.#woken(ex, addr),
      (err) => {
        if (this.#ex !== ex) return;
        ctx.log("router: wake failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
        this.#failed(ex, errorBytes(wakeFailed(ex.what, target, err), true));
      },
    );
  }

  #woken(ex: Exchange, addr: HostAddress): void {
    if (this.#ex !== ex) return; // the client went away during the wake
    ex.addr = addr;
    const head = upstreamRequestHead(ex.head, ex.route.path, { clientIp: this.#clientIp, host: ex.head.host, prefix: ex.route.prefix });
    ex.upHead = ASCII.test(head) ? head : Buffer.from(head, "latin1");
    const key = upstreamKey(ex.route.instance.instanceId, addr);
    if (this.#up && (this.#up.key !== key || this.#up.closed)) {
      this.front.pool.release(this.#up);
      this.#up = null;
    }
    const up = this.#up ?? this.front.pool.take(key, this);
    if (up) {
      up.owner = this;
      return this.#send(ex, up);
    }
    this.#connect(ex, key, addr);
  }

  #connect(ex: Exchange, key: string, addr: HostAddress): void {
    this.front.pool.connect(key, ex.route.instance.instanceId, addr, this).then(
      (up) => {
        if (this.#ex !== ex) return this.front.pool.discard(up);
        this.#send(ex, up);
      },
      (err) => {
        if (this.#ex === ex) this.#upstreamFailed(ex, err);
      },
    );
  }

  #send(ex: Exchange, up: Upstream): void {
    this.#up = up;
    ex.up = up;
    // Head and the body bytes already here in one write: each write is a syscall and a loopback packet.
    const buf = this.#buf;
    if (buf && buf.length > 0 && !ex.request.done) {
      const n = this.#feedRequest(ex, buf);
      if (n < 0) return;
      const head = ex.upHead!;
      ex.upHead = typeof head === "string" ? joinHead(head, buf.subarray(0, n)) : Buffer.concat([head, buf.subarray(0, n)]);
      this.#buf = buf.subarray(n);
      ex.bodySent = false; // a retry resends exactly this first write
    }
    this.#write(up.socket, this.#toUp, ex.upHead!, this.#pauseClientFn);
    this.#pumpBody(ex);
  }

  /** Move buffered request body bytes upstream. */
  #pumpBody(ex: Exchange): void {
    const buf = this.#buf;
    if (!ex.up || ex.request.done) return this.#requestDone(ex);
    if (buf && buf.length > 0 && this.#toUp.length === 0) {
      const n = this.#feedRequest(ex, buf);
      if (n < 0) return;
      this.#write(ex.up.socket, this.#toUp, buf.subarray(0, n), this.#pauseClientFn);
      this.#buf = buf.subarray(n);
    }
    if (ex.request.done) this.#requestDone(ex);
    else if (this.#toUp.length === 0) this.#resumeClient();
  }

  /** Account request body bytes; -1 (after tearing down) when the client's framing is broken. */
  #feedRequest(ex: Exchange, bytes: Uint8Array): number {
    const n = ex.request.feed(bytes, 0);
    if (n instanceof Error) {
      this.#ctx.log("router: malformed request body from client", { instanceId: ex.route.instance.instanceId, error: n.message });
      this.#abort();
      return -1;
    }
    if (n > 0) ex.bodySent = true;
    return n;
  }

  #requestDone(ex: Exchange): void {
    // The client keeps being read (a close must be noticed); pipelined bytes wait in the buffer.
    if (!this.#buf || this.#buf.length <= MAX_HEAD) this.#resumeClient();
    if (ex.response && ex.response !== "close" && ex.response.done) this.#exchangeDone(ex);
  }

  onUpstreamDrain(up: Upstream): void {
    const ex = this.#ex;
    if (!ex || ex.up !== up || !this.#flush(up.socket, this.#toUp)) return;
    this.#pumpBody(ex);
  }

  // ---- responses ----

  onUpstreamData(up: Upstream, chunk: Uint8Array): void {
    const ex = this.#ex;
    if (!ex || ex.up !== up) return this.front.pool.discard(up); // nothing was asked of it
    if (ex.response === null) return this.#responseHead(ex, ex.resBuf ? Buffer.concat([ex.resBuf, chunk]) : (chunk as Buffer), ex.resBuf !== null);
    this.#responseBody(ex, chunk);
  }

  /** `owned`: `buf` is the router's; else it is Bun's read buffer, to copy before keeping. */
  #responseHead(ex: Exchange, buf: Buffer, owned: boolean): void {
    for (;;) {
      const end = headEnd(buf);
      if (end < 0) {
        if (buf.length > MAX_HEAD) return this.#upstreamFailed(ex, new Error(`response head longer than ${MAX_HEAD} bytes`));
        ex.resBuf = owned ? buf : Buffer.from(buf);
        return;
      }
      const head = parseResponseHead(buf.toString("latin1", 0, end - 4));
      if (!head) return this.#upstreamFailed(ex, new Error("malformed HTTP response head"));
      buf = buf.subarray(end);
      if (head.status >= 200 || head.status === 101) {
        if (head.status === 101) return this.#upstreamFailed(ex, new Error("101 Switching Protocols to a request that asked for no upgrade"));
        return this.#responseStart(ex, head, buf);
      }
      this.#toClientWrite(Buffer.from(downstreamResponseHead(head, null, false), "latin1")); // 100 Continue, 103 Early Hints
    }
  }

  #responseStart(ex: Exchange, head: ResponseHead, rest: Buffer): void {
    const framing = responseFraming(head, ex.head.method);
    if (framing instanceof Error) return this.#upstreamFailed(ex, framing);
    ex.resBuf = null;
    ex.response = framing;
    if (head.close) ex.upDirty = true;
    // Instances reached on the router's own origin must not share it in the browser (origin-isolation.ts).
    const isolate = ex.route.rule === "host" ? null : { prefix: ex.route.prefix };
    const headText = downstreamResponseHead(head, isolate, framing instanceof ChunkedFramer);
    if (rest.length > 0 || (framing !== "close" && framing.done)) this.#responseBody(ex, rest, headText);
    else this.#toClientWrite(Buffer.from(headText, "latin1"));
  }

  /** Pass on response body bytes (after `head`, written with them in one write). */
  #responseBody(ex: Exchange, chunk: Uint8Array, head?: string): void {
    const framing = ex.response!;
    if (framing === "close") return this.#toClientWrite(head !== undefined ? joinHead(head, chunk) : chunk);
    const n = framing.feed(chunk, 0);
    if (n instanceof Error) {
      this.#ctx.log("router: upstream response broke mid-body", { instanceId: ex.route.instance.instanceId, url: ex.route.path, error: n.message });
      return this.#abort();
    }
    const body = n === chunk.length ? chunk : chunk.subarray(0, n);
    this.#toClientWrite(head !== undefined ? joinHead(head, body) : body);
    if (!framing.done) return;
    if (n < chunk.length) ex.upDirty = true; // bytes after the response: the guest is out of step
    if (ex.request.done) return this.#exchangeDone(ex);
    // The guest answered before the request body was complete: finish here and close the connection.
    ex.upDirty = true;
    this.#clientEnded = true;
    this.#exchangeDone(ex);
  }

  onUpstreamClose(up: Upstream, err?: Error): void {
    if (this.#up === up) this.#up = null;
    const ex = this.#ex;
    if (!ex || ex.up !== up) return;
    ex.upDirty = true;
    if (ex.response === "close") return this.#exchangeDone(ex, true);
    if (ex.response !== null) {
      this.#ctx.log("router: upstream response broke mid-body", { instanceId: ex.route.instance.instanceId, url: ex.route.path, error: err ? causeOf(err) : "connection closed" });
      ex.end();
      this.#ex = null;
      return this.#closeClient();
    }
    if (up.reused && !ex.retried && !ex.bodySent && ex.request.done && RETRYABLE.has(ex.head.method)) {
      // A keep-alive connection the guest closed just as it was reused: retry once on a fresh one.
      this.#ctx.log("router: retrying idempotent request after upstream error", { instanceId: ex.route.instance.instanceId, method: ex.head.method, error: err ? causeOf(err) : "connection closed" });
      ex.retried = true;
      ex.up = undefined;
      ex.resBuf = null;
      this.#toUp.length = 0;
      return this.#connect(ex, up.key, ex.addr!);
    }
    this.#upstreamFailed(ex, err ?? new Error("the guest closed the connection before answering"));
  }

  /** The guest port refused or broke the exchange before a response head reached the client: 502. */
  #upstreamFailed(ex: Exchange, err: unknown): void {
    const { instance } = ex.route;
    const target = { instanceId: instance.instanceId, guestPort: instance.guestPort };
    this.#ctx.log("router: upstream request failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
    if (ex.response !== null) return this.#abort();
    this.#failed(ex, errorBytes(upstreamFailed(ex.what, target, ex.addr!, err), true));
  }

  /** Answer `ex` with one of the router's own responses and end it. */
  #failed(ex: Exchange, bytes: Buffer): void {
    if (ex.up) {
      this.front.pool.discard(ex.up);
      if (this.#up === ex.up) this.#up = null;
    }
    this.#toUp.length = 0;
    ex.end();
    this.#ex = null;
    this.#answered(bytes, true);
  }

  /** After a response the router wrote itself: close, or go on with the next request. */
  #answered(bytes: Buffer, close: boolean): void {
    this.#toClientWrite(bytes);
    if (close || this.#clientEnded) return this.#closeClient();
    this.#state = "head";
    this.#lastActive = performance.now();
    this.#resumeClient();
    this.#next();
  }

  /** The response was fully passed on (`closed`: delimited by the guest closing). */
  #exchangeDone(ex: Exchange, closed = false): void {
    if (this.#ex !== ex) return;
    this.#ex = null;
    ex.end();
    const up = ex.up!;
    if (ex.upDirty || closed) {
      if (!up.closed) this.front.pool.discard(up);
      if (this.#up === up) this.#up = null;
    } else up.reused = true;
    if (ex.head.close || closed || this.#clientEnded) return this.#closeClient();
    this.#state = "head";
    this.#lastActive = performance.now();
    this.#resumeClient();
    this.#next();
  }

  // ---- handover to Bun.serve ----

  /** Splice this connection, from the current request on, to the internal Bun.serve. */
  #handover(): void {
    this.#state = "handover";
    if (this.#up) {
      this.front.pool.release(this.#up);
      this.#up = null;
    }
    const conn = this;
    const { host, port } = this.#ctx.inner();
    Bun.connect<undefined>({
      hostname: host,
      port,
      allowHalfOpen: true,
      data: undefined,
      socket: {
        data: (_s, chunk) => conn.#toClientWrite(chunk),
        drain: (s) => {
          if (conn.#flush(s, conn.#toInner)) conn.#resumeClient();
        },
        end: () => conn.#closeClient(),
        close: (s) => {
          conn.front.handedOver.delete(s.localPort);
          conn.#closeClient();
        },
        error: () => {},
      },
    }).then(
      (inner) => {
        if (this.#state === "closed") return void inner.end();
        this.front.handedOver.set(inner.localPort, this.#clientIp);
        this.#inner = inner;
        const buf = this.#buf;
        this.#buf = null;
        if (buf) this.#write(inner, this.#toInner, buf, this.#pauseClientFn);
        if (this.#toInner.length === 0) this.#resumeClient();
        if (this.#clientEnded) inner.shutdown();
      },
      (err) => {
        this.#ctx.log("router: internal handover failed", { error: causeOf(err) });
        this.#abort();
      },
    );
  }
}
