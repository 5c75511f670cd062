/**
 * @module daemon/router/resolve
 * Picks the instance an HTTP request goes to and the path the guest sees, by
 * the rule documented in `types.ts` (Host `NAME.localhost`, then a `/NAME`
 * path prefix, then the single served instance). Pure: no sockets, no hooks.
 */
import { AppError } from "../../api/errors.ts";
import type { ServedInstance } from "./types.ts";

/** A request that matched an instance. */
export interface ResolvedRoute {
  instance: ServedInstance;
  /** Path and query to send to the guest (prefix stripped for rule 2). */
  path: string;
  /** The stripped `/NAME` prefix (rule 2), for `X-Forwarded-Prefix`. */
  prefix?: string;
  /** Which rule matched, for logs and tests. */
  rule: "host" | "path" | "default" | "port";
}

/**
 * Split the origin-form request target out of an absolute URL without
 * normalising it further: escapes such as `%2F` reach the guest as sent
 * (Bun.serve has already resolved `.`/`..` segments in `req.url`, as a browser would).
 */
export function requestTarget(url: string): string {
  const scheme = url.indexOf("://");
  const slash = scheme < 0 ? url.indexOf("/") : url.indexOf("/", scheme + 3);
  const query = url.indexOf("?", scheme < 0 ? 0 : scheme + 3);
  if (slash < 0 || (query >= 0 && query < slash)) return `/${query >= 0 ? url.slice(query) : ""}`;
  return url.slice(slash);
}

/** The NAME of a `NAME.localhost[:port]` Host header, lowercased; undefined for any other host. */
export function hostName(host: string | null): string | undefined {
  if (!host) return undefined;
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) return undefined; // an IPv6 literal is never NAME.localhost
  const colon = h.lastIndexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (!h.endsWith(".localhost")) return undefined;
  const name = h.slice(0, -".localhost".length);
  return name === "" ? undefined : name;
}

function find(served: ServedInstance[], name: string): ServedInstance | undefined {
  const lower = name.toLowerCase();
  return served.find((s) => s.handle.toLowerCase() === lower || s.instanceId.toLowerCase() === lower);
}

function choices(served: ServedInstance[]): string {
  return served.map((s) => (s.handle === s.instanceId ? `"${s.handle}"` : `"${s.handle}" (${s.instanceId})`)).join(", ");
}

/** The 404 for a request no rule matched, listing what is served. */
export function noRoute(served: ServedInstance[], what: string, routerOrigin: string): AppError {
  const data = { instances: served.map((s) => ({ instanceId: s.instanceId, handle: s.handle, guestPort: s.guestPort })) };
  if (served.length === 0) {
    return new AppError("not_found", `no instance is being served, so nothing answers ${what}`, "start one with 'aegis run --expose PORT -- CMD' or 'aegis instance start --expose PORT'", data);
  }
  const example = served[0]!.handle;
  const hostExample = routerOrigin.replace("://127.0.0.1", `://${example}.localhost`).replace("://localhost", `://${example}.localhost`);
  return new AppError(
    "not_found",
    `no served instance matches ${what}; ${served.length} instances are served: ${choices(served)}`,
    `pick one by host (${hostExample}/) or by path prefix (${routerOrigin}/${example}/)`,
    data,
  );
}

/**
 * Route one request. Returns the match or the 404 error to send.
 * @param host the Host header
 * @param target the raw request target (`/path?query`)
 * @param routerOrigin `http://127.0.0.1:PORT`, used in the 404 hint
 */
export function resolveRoute(served: ServedInstance[], host: string | null, target: string, routerOrigin: string): ResolvedRoute | AppError {
  const name = hostName(host);
  if (name !== undefined) {
    const instance = find(served, name);
    return instance ? { instance, path: target, rule: "host" } : noRoute(served, `host "${host}" (no instance named "${name}")`, routerOrigin);
  }
  const q = target.indexOf("?");
  const pathname = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  const end = pathname.indexOf("/", 1);
  const first = end < 0 ? pathname.slice(1) : pathname.slice(1, end);
  if (first !== "") {
    const instance = find(served, safeDecode(first));
    if (instance) {
      const rest = end < 0 ? "/" : pathname.slice(end);
      return { instance, path: `${rest}${query}`, prefix: `/${first}`, rule: "path" };
    }
  }
  if (served.length === 1) return { instance: served[0]!, path: target, rule: "default" };
  return noRoute(served, `path "${pathname}"${host ? ` on host "${host}"` : ""}`, routerOrigin);
}

function safeDecode(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch (err) {
    // A malformed escape cannot name an instance; the raw segment is compared instead.
    if (err instanceof URIError) return segment;
    throw err;
  }
}

/**
 * A direct route to one guest port (see types.ts): the E2B headers, or a
 * `PORT-NAME.localhost` host naming no instance itself. `lookup` finds any
 * instance by handle or id.
 */
export function directRoute(
  headers: { get(name: string): string | null },
  target: string,
  served: ServedInstance[],
  lookup: (name: string) => { instanceId: string; handle: string } | undefined,
): ResolvedRoute | AppError | null {
  const sandbox = headers.get("e2b-sandbox-id");
  const port = headers.get("e2b-sandbox-port");
  if (sandbox !== null || port !== null) {
    if (sandbox === null || port === null || !/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return new AppError("invalid_request", "E2b-Sandbox-Id and E2b-Sandbox-Port must be sent together, the port as a number 1-65535");
    }
    const inst = lookup(sandbox);
    if (!inst) return new AppError("not_found", `no instance or sandbox "${sandbox}" (E2b-Sandbox-Id)`);
    return { instance: { ...inst, guestPort: Number(port) }, path: target, rule: "port" };
  }
  const name = hostName(headers.get("host"));
  if (name === undefined || find(served, name) || lookup(name)) return null;
  const m = /^(\d{1,5})-(.+)$/.exec(name);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) return null;
  const inst = lookup(m[2]!);
  return inst ? { instance: { ...inst, guestPort: Number(m[1]) }, path: target, rule: "port" } : null;
}
