/**
 * @module daemon/router/origin-isolation
 * Every instance reached on the router's own origin (`http://127.0.0.1:8099/NAME/`
 * and the default route) shares one browser origin with every other such
 * instance, so a page of one could read another's pages and cookies. Those
 * responses therefore carry `Content-Security-Policy: sandbox ...` without
 * `allow-same-origin`: the browser gives each page an opaque origin, so its
 * scripts cannot read other instances' responses, storage or `document.cookie`.
 * Scripts, forms, popups, modals and downloads still work.
 *
 * The policy is added as one more policy beside any the guest sent (browsers
 * enforce every policy, and sandbox flags only ever add restrictions), so a
 * guest's own CSP is kept and cannot lift the sandbox.
 *
 * `Set-Cookie` paths are moved under the prefix (`Path=/` from `/web/...`
 * becomes `Path=/web`): a cookie an instance sets is then sent back only to
 * that instance, never to the server of another instance on the same origin.
 *
 * The price: a sandboxed page's own `fetch()` calls are cross-origin (origin
 * `null`). `http://NAME.localhost:8099/` is a real origin per instance, is the
 * URL we recommend, and is left untouched.
 */

/** The sandbox policy for pages on the shared router origin (no `allow-same-origin`). */
export const SHARED_ORIGIN_CSP = "sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads allow-pointer-lock allow-presentation";

/**
 * Put one Set-Cookie value's `Path` under `prefix`: `Path=/` becomes `Path=/web`,
 * `Path=/a` becomes `Path=/web/a`, and a cookie without a Path gets `Path=/web`
 * (the browser's default would be `/` for a request to `/web`, i.e. every instance).
 */
export function scopeCookie(cookie: string, prefix: string): string {
  const under = (path: string) => (path === "" || path === "/" ? prefix : `${prefix}${path.startsWith("/") ? path : `/${path}`}`);
  let hasPath = false;
  const parts = cookie.split(";").map((p, i) => {
    const m = i === 0 ? null : /^\s*path\s*=(.*)$/i.exec(p);
    if (!m) return p;
    hasPath = true;
    return ` Path=${under(m[1]!.trim())}`;
  });
  return hasPath ? parts.join(";") : `${cookie}; Path=${prefix}`;
}

/**
 * Add the sandbox policy and scope cookies for a response served on the
 * shared origin. `prefix` is the stripped `/NAME` (undefined for the default
 * route, whose paths are already the guest's own). Mutates and returns `h`.
 */
export function isolateSharedOrigin(h: Headers, prefix: string | undefined): Headers {
  h.append("content-security-policy", SHARED_ORIGIN_CSP);
  if (prefix) {
    const cookies = h.getSetCookie();
    if (cookies.length > 0) {
      h.delete("set-cookie");
      for (const c of cookies) h.append("set-cookie", scopeCookie(c, prefix));
    }
  }
  return h;
}
