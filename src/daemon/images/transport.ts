/**
 * @module daemon/images/transport
 * HTTPS by default; plain HTTP only for loopback registries (`localhost`,
 * `127.x.y.z`, `[::1]`) or hosts listed in `AEGIS_INSECURE_REGISTRIES`
 * (comma-separated, `host` or `host:port`).
 */

function hostname(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const i = host.lastIndexOf(":");
  return i >= 0 ? host.slice(0, i) : host;
}

/** True for localhost, 127.0.0.0/8 and [::1]. */
export function isLoopback(host: string): boolean {
  const h = hostname(host).toLowerCase();
  return h === "localhost" || h === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The URL scheme to use for a registry host (`host[:port]`). */
export function transportFor(host: string, env: Record<string, string | undefined> = process.env): "http" | "https" {
  if (isLoopback(host)) return "http";
  const list = (env.AEGIS_INSECURE_REGISTRIES ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  const h = host.toLowerCase();
  return list.includes(h) || list.includes(hostname(h)) ? "http" : "https";
}
