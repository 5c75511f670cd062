/**
 * @module daemon/router/types
 * The contract between the router and the daemon. The router owns sockets and
 * bytes; the daemon owns instances, so it implements {@link RouterHooks}: which
 * instances are served, how to make one reachable (resume, restore, cold boot)
 * and how open connections count towards the idle policy.
 *
 * Routing rule for HTTP and WebSocket requests on the router port (first match wins):
 * 1. `Host: NAME.localhost[:port]` (NAME = an instance handle or id, case-insensitive)
 *    routes to that instance, path untouched. An unknown NAME is a 404: an explicit
 *    name never falls through to another instance.
 * 2. Otherwise a path `/NAME` or `/NAME/rest` where NAME is a served instance's handle
 *    or id routes to it with the prefix stripped: the guest sees `/rest` (or `/`), the
 *    query string kept, and `X-Forwarded-Prefix: /NAME`.
 * 3. Otherwise, when exactly one instance is served, that one ("the default route").
 * 4. Otherwise a 404 JSON error listing the served instances.
 *
 * Before these, a request may name an instance and a guest port directly (E2B's
 * `sandbox.getHost(port)` and its proxy headers): `E2b-Sandbox-Id: NAME` with
 * `E2b-Sandbox-Port: PORT`, or `Host: PORT-NAME.localhost[:port]` when no
 * instance is named `PORT-NAME` itself. The daemon decides which instances
 * may be named so (E2B sandboxes, whose every port E2B makes reachable; an
 * Aegis instance serves only what it exposes); it adds the forward on demand, and a port the
 * daemon serves itself (envd of E2B sandboxes) is answered by {@link RouterHooks.local}.
 *
 * Rules 2 and 3 serve every instance from one browser origin (the router's), so
 * their responses are sandboxed into an opaque origin and their cookies scoped
 * to the prefix (origin-isolation.ts). Rule 1 gives each instance its own
 * origin and is the URL to recommend; its responses pass unchanged.
 */

/** Where a connection goes: one guest port of one instance. */
export interface RouteTarget {
  instanceId: string;
  guestPort: number;
}

/** An instance the router may route HTTP to (its first exposed guest port). */
export interface ServedInstance {
  instanceId: string;
  /** The user-facing name (`aegis instance start --name`); may equal the id. */
  handle: string;
  guestPort: number;
}

/** The host address QEMU forwards to a guest port. */
export interface HostAddress {
  host: string;
  port: number;
}

/** What the daemon provides to the router. */
export interface RouterHooks {
  /**
   * The instances HTTP may be routed to, read on every request (keep it cheap).
   * Which instance serves a request follows the rule in this module's header.
   */
  servedInstances(): ServedInstance[];
  /**
   * Make the target reachable, waking it when paused or stopped. Resolves with
   * the host address QEMU forwards to the guest port once the guest port
   * ACCEPTS. May take seconds (cold boot). Concurrent calls during one wake
   * must share that wake. Rejects with an Error whose message is user-facing;
   * the router answers such a request with a 503.
   */
  ensureReachable(target: RouteTarget): Promise<HostAddress>;
  /** A proxied request, WebSocket or TCP connection to `instanceId` started (it may still be waiting for a wake). */
  activityStarted(instanceId: string): void;
  /** That request, WebSocket or TCP connection ended; called exactly once per `activityStarted`. */
  activityEnded(instanceId: string): void;
  /** The instance `name` (handle or id) for a direct port route, or undefined when there is none. */
  instanceNamed?(name: string): { instanceId: string; handle: string } | undefined;
  /** A response the daemon gives itself for this target (E2B's envd), or null to proxy to the guest. */
  local?(target: RouteTarget, req: Request): Promise<Response> | null;
}

/** Structured log sink; fields carry names, ids and ports only. */
export type RouterLog = (msg: string, fields?: Record<string, unknown>) => void;

/** Options of {@link import("./router.ts").Router}. */
export interface RouterOptions {
  /** Interface to listen on; default `127.0.0.1`. */
  host?: string;
  /** HTTP router port; the daemon's default is 8099, `0` picks a free port (tests). */
  httpPort: number;
  /** Where the router reports failures (upstream errors, wake failures, broken clients). */
  log?: RouterLog;
  /** This daemon's AEGIS_HOME, recorded in the port claims (control/port-claims.ts) so another daemon's bind error can name it. */
  home?: string;
}
