/**
 * @module daemon/router/router
 * The router: one HTTP/1.1 reverse proxy on `127.0.0.1:8099` (WebSocket
 * upgrades included) that routes by the rule in `types.ts`, plus one raw TCP
 * listener per `--expose PUBLIC:GUEST`. Every connection wakes its instance
 * through {@link RouterHooks.ensureReachable} and is counted with
 * `activityStarted`/`activityEnded` for the idle policy.
 *
 * The router port is a raw TCP front (http-front.ts) that parses only request
 * and response heads and passes bodies byte for byte over kept-alive upstream
 * connections; it hands WebSocket upgrades, direct port routes and unusual
 * requests, whole connection and all, to an internal Bun.serve on a free
 * loopback port (streaming `fetch` for HTTP, Bun's WebSocket server and
 * client bridged). Raw TCP forwards are Bun.listen/Bun.connect pipes. See
 * bench/router.ts for what each costs against a direct connection.
 *
 * Known limits of the handed-over path, all from Bun.serve and the WebSocket client API:
 * - a streamed response body over 64 KiB reaches the client chunked, without
 *   the guest's Content-Length (oven-sh/bun#10507); smaller bodies are read
 *   whole and keep it, and HEAD keeps it (the front keeps the guest's framing);
 * - `.`/`..` path segments are resolved before routing (as a browser would);
 * - a guest that refuses a WebSocket upgrade gives a 502 envelope, not its own
 *   refusal response.
 * And of both: `removeInstance` closes WebSockets, TCP connections and idle
 * kept-alive upstream connections; in-flight plain HTTP requests end on their
 * own when the guest goes away.
 */
import type { Server } from "bun";
import { AppError, Conflict, isAppError } from "../../api/errors.ts";
import { claimPort, describePortInUse, releasePort } from "../../control/port-claims.ts";
import { OpenConnections } from "./connections.ts";
import { HttpFront } from "./http-front.ts";
import { proxyHttp } from "./http-proxy.ts";
import { directRoute, requestTarget, resolveRoute } from "./resolve.ts";
import { causeOf, errorResponse } from "./responses.ts";
import { TcpForward } from "./tcp-forward.ts";
import type { RouteTarget, RouterHooks, RouterLog, RouterOptions } from "./types.ts";
import { isWebSocketUpgrade, webSocketHandlers, type WsBridge, type WsContext, proxyWebSocket } from "./ws-proxy.ts";

/** Request bodies are streamed, never held whole, so the router sets no size limit of its own. */
const NO_BODY_LIMIT = Number.MAX_SAFE_INTEGER;

/** The HTTP router and the TCP forwards of the served instances. */
export class Router {
  readonly #hooks: RouterHooks;
  readonly #host: string;
  readonly #wantedPort: number;
  readonly #log: RouterLog;
  readonly #home: string;
  readonly #connections = new OpenConnections();
  readonly #forwards = new Map<number, TcpForward>();
  #server: Server<WsBridge> | undefined;
  #front: HttpFront | undefined;
  #origin: { port: number; text: string } | undefined;

  constructor(hooks: RouterHooks, opts: RouterOptions) {
    this.#hooks = hooks;
    this.#host = opts.host ?? "127.0.0.1";
    this.#wantedPort = opts.httpPort;
    this.#log = opts.log ?? (() => {});
    this.#home = opts.home ?? "(unknown)";
  }

  /** The HTTP port actually listened on (after {@link start}). */
  get httpPort(): number {
    if (!this.#front) throw new Error("router: httpPort read before start()");
    return this.#front.port;
  }

  /** `http://HOST:PORT` of the HTTP router. */
  get origin(): string {
    // Read by the front for every request it routes (the 404 hint): made once per listening port.
    const port = this.httpPort;
    if (this.#origin?.port !== port) this.#origin = { port, text: `http://${this.#host.includes(":") ? `[${this.#host}]` : this.#host}:${port}` };
    return this.#origin.text;
  }

  /** Open connections (bridged WebSockets and TCP pipes) to `instanceId`, or to all instances. */
  openConnections(instanceId?: string): number {
    return this.#connections.count(instanceId);
  }

  /**
   * Listen for HTTP.
   * @throws Conflict when the port cannot be bound
   */
  async start(): Promise<void> {
    if (this.#front) return;
    const ctx: WsContext = { hooks: this.#hooks, log: this.#log, connections: this.#connections };
    // The internal server: only the front connects to it, on a free loopback port.
    const server = Bun.serve<WsBridge>({
      hostname: this.#host,
      port: 0,
      reusePort: false,
      maxRequestBodySize: NO_BODY_LIMIT,
      development: false,
      fetch: (req, server) => this.#handle(req, server, ctx),
      error: (err) => {
        this.#log("router: unhandled error in request handler", { error: causeOf(err) });
        return errorResponse(new AppError("internal", `router failed: ${causeOf(err)}`));
      },
      websocket: webSocketHandlers,
    });
    const inner = { host: this.#host, port: server.port! };
    try {
      this.#front = new HttpFront(this.#host, this.#wantedPort, { hooks: this.#hooks, log: this.#log, origin: () => this.origin, inner: () => inner });
    } catch (err) {
      await server.stop(true);
      throw new Conflict(
        `cannot listen on ${this.#host}:${this.#wantedPort} for the HTTP router: ${describePortInUse(this.#host, this.#wantedPort)} (${causeOf(err)})`,
        "stop the other process, or give this daemon another router port (AEGIS_ROUTER_PORT)",
      );
    }
    this.#server = server;
    claimPort(this.#host, this.httpPort, this.#home, "HTTP router");
  }

  /** The client's IP for a request on the internal server (handed over by the front, which knows it). */
  #clientIp(req: Request, server: Server<WsBridge>): string | undefined {
    const peer = server.requestIP(req);
    if (!peer) return undefined;
    return this.#front?.handedOver.get(peer.port) ?? peer.address;
  }

  async #handle(req: Request, server: Server<WsBridge>, ctx: WsContext): Promise<Response | undefined> {
    // Streams (SSE, long polls, slow wakes) may be quiet for longer than Bun's 10 s idle timeout.
    server.timeout(req, 0);
    try {
      const served = this.#hooks.servedInstances();
      const lookup = this.#hooks.instanceNamed?.bind(this.#hooks) ?? (() => undefined);
      const direct = directRoute(req.headers, requestTarget(req.url), served, lookup);
      const route = direct ?? resolveRoute(served, req.headers.get("host"), requestTarget(req.url), this.origin);
      if (route instanceof AppError) return errorResponse(route);
      const local = this.#hooks.local?.({ instanceId: route.instance.instanceId, guestPort: route.instance.guestPort }, req);
      if (local) return await local;
      const clientIp = this.#clientIp(req, server);
      if (isWebSocketUpgrade(req)) return await proxyWebSocket(req, server, route, clientIp, ctx);
      return await proxyHttp(req, route, clientIp, ctx);
    } catch (err) {
      this.#log("router: request failed", { method: req.method, url: req.url, error: causeOf(err) });
      return errorResponse(isAppError(err) ? err : new AppError("internal", `router failed on ${req.method} ${requestTarget(req.url)}: ${causeOf(err)}`));
    }
  }

  /**
   * Forward every TCP connection on `host:publicPort` to `target` (`--expose PUBLIC:GUEST`).
   * @returns the port actually listened on (differs from `publicPort` only for 0)
   * @throws Conflict when the port is already forwarded or cannot be bound
   */
  async addTcpForward(publicPort: number, target: RouteTarget): Promise<number> {
    const existing = this.#forwards.get(publicPort);
    if (existing) {
      throw new Conflict(`port ${publicPort} is already forwarded to guest port ${existing.target.guestPort} of instance "${existing.target.instanceId}"`, "remove that forward first or pick another PUBLIC port");
    }
    const fwd = TcpForward.listen(this.#host, publicPort, target, { hooks: this.#hooks, log: this.#log, connections: this.#connections });
    this.#forwards.set(fwd.port, fwd);
    claimPort(this.#host, fwd.port, this.#home, `--expose ${fwd.port}:${target.guestPort} of instance "${target.instanceId}"`);
    return fwd.port;
  }

  /** Stop the forward on `publicPort` and close its connections; unknown ports are ignored. */
  removeTcpForward(publicPort: number): void {
    const fwd = this.#forwards.get(publicPort);
    if (!fwd) return;
    this.#forwards.delete(publicPort);
    fwd.stop();
    releasePort(this.#host, publicPort);
  }

  /** Stop the instance's TCP forwards and close its open WebSockets and TCP connections. */
  removeInstance(instanceId: string): void {
    for (const [port, fwd] of this.#forwards) if (fwd.target.instanceId === instanceId) this.removeTcpForward(port);
    this.#connections.closeInstance(instanceId);
    this.#front?.pool.closeInstance(instanceId);
  }

  /** Stop listening everywhere and close every connection. */
  async stop(): Promise<void> {
    for (const port of [...this.#forwards.keys()]) this.removeTcpForward(port);
    this.#connections.closeAll();
    const server = this.#server;
    const front = this.#front;
    if (front) releasePort(this.#host, front.port);
    this.#server = undefined;
    this.#front = undefined;
    front?.stop();
    await server?.stop(true);
  }
}
