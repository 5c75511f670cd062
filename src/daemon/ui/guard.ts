/**
 * @module daemon/ui/guard
 * The web UI's front door, in front of every route (issue 18, "safe by
 * construction"):
 *
 * 1. The Host header must name the UI itself (`127.0.0.1:PORT` or
 *    `localhost:PORT`): a DNS-rebinding page whose name now resolves to
 *    127.0.0.1 still sends its own name, and is refused.
 * 2. Every request needs the per-AEGIS_HOME token. `aegis ui` opens
 *    `/?token=T`; that request sets an HttpOnly SameSite=Strict cookie and
 *    redirects to the same path without the token, so it does not linger in
 *    the address bar or history. A wrong token is refused, not ignored.
 * 3. State-changing requests (anything but GET/HEAD) also need the CSRF
 *    header `X-Aegis-CSRF` (derived from the token, carried by the pages),
 *    which a cross-site form or fetch cannot set; an `Origin` header, when
 *    present, must be the UI's own.
 * 4. Every response forbids framing, sniffing, referrers and caching, and
 *    carries a CSP that allows only the UI's own script and styles.
 *
 * Known limit: a cookie for 127.0.0.1 is sent to every port of 127.0.0.1.
 * The router strips it (router/headers.ts), but a raw TCP public port
 * (`--expose PUBLIC:GUEST`) opened in the same browser forwards it to the
 * guest untouched. The network policy (api/network-policy.ts) refuses
 * guests the host's loopback by default, so such a guest still cannot reach
 * the UI, unless the user allowed it `host:PORT` of the UI's port.
 */
import type { MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { csrfFor, sameSecret } from "./token.ts";

/**
 * Prefix of the session cookie's name; the full name adds the port,
 * `aegis_ui_8097`. Browsers do not scope cookies by port, so two homes' UIs
 * on one machine would otherwise overwrite each other's cookie, and every
 * other service on 127.0.0.1 receives it: the router drops cookies with this
 * prefix before proxying to a guest (router/headers.ts).
 */
export const COOKIE_PREFIX = "aegis_ui";

/** The session cookie's name for a UI on `port`. */
export function cookieName(port: number): string {
  return `${COOKIE_PREFIX}_${port}`;
}
/** Header carrying the CSRF value on state-changing requests. */
export const CSRF_HEADER = "X-Aegis-CSRF";

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** The Host values that name the UI on `port`. */
export function ownHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

function refuse(status: 401 | 403 | 421, message: string): Response {
  return new Response(`${message}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

/** The guard middleware for a UI on `port()` with `token`. `port` is read per request (the listener may pick it). */
export function uiGuard(token: string, port: () => number): MiddlewareHandler {
  const csrf = csrfFor(token);
  return async (c, next) => {
    const hosts = ownHosts(port());
    const COOKIE = cookieName(port());
    const host = (c.req.header("host") ?? "").toLowerCase();
    if (!hosts.includes(host)) return refuse(421, `refused: Host "${host}" is not this UI (${hosts.join(" or ")})`);
    const url = new URL(c.req.url);
    const offered = url.searchParams.get("token");
    if (offered !== null) {
      if (!sameSecret(offered, token)) return refuse(403, "refused: wrong UI token; open the URL that `aegis ui` prints");
      setCookie(c, COOKIE, token, { httpOnly: true, sameSite: "Strict", path: "/" });
      url.searchParams.delete("token");
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    if (!sameSecret(getCookie(c, COOKIE), token)) return refuse(401, "refused: no UI session; open the URL that `aegis ui` prints");
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const origin = c.req.header("origin");
      if (origin !== undefined && !hosts.some((h) => origin === `http://${h}`)) return refuse(403, `refused: Origin "${origin}" is not this UI`);
      if (!sameSecret(c.req.header(CSRF_HEADER), csrf)) return refuse(403, `refused: missing or wrong ${CSRF_HEADER} header`);
    }
    await next();
    c.header("content-security-policy", CSP);
    c.header("x-frame-options", "DENY");
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    if (!c.res.headers.has("cache-control")) c.header("cache-control", "no-store");
  };
}
