/**
 * @module api/egress-secrets
 * Secrets kept out of the guest (issue 12, item 3), as data: which hosts a
 * secret is bound to, the placeholder the guest sees instead of its value,
 * and the substitution the host's egress proxy (vmm/network/egress-proxy.ts)
 * applies to HTTP request headers. Pure, shared by the CLI (early errors),
 * the API schema, the daemon and the proxy; plus the trust-store contract
 * (paths and environment variables) the daemon writes into a guest.
 *
 * Binding modes, stored with the secret (`aegis secret set ... --host H`,
 * `--raw`, or neither):
 * - `hosts`: substituted for the listed hosts (`NAME[:PORT]`, port 443 by
 *   default), over TLS only: a secret is never sent in clear text, so plain
 *   HTTP requests are never rewritten.
 * - `raw`: the value itself goes into the guest's environment (the
 *   behaviour before issue 12).
 * - `auto` (the default): `OPENAI_API_KEY` binds to the host of the VM's
 *   `OPENAI_BASE_URL` (default `https://api.openai.com/v1`),
 *   `ANTHROPIC_API_KEY` to that of `ANTHROPIC_BASE_URL` (default
 *   `https://api.anthropic.com`); when that URL is not `https://` with a DNS
 *   name (e.g. a local stand-in at `http://10.0.2.2:PORT`), the key cannot be
 *   substituted and is injected raw. Any other secret is raw.
 *
 * The placeholder is `AEGIS_SECRET_<32 hex>`, from 16 random bytes made when
 * the secret is first stored and kept with it (never derived from the value,
 * so it tells nothing about it; stable across `secret set` updates, so a
 * running guest's copy stays valid for the next boot).
 */

/** How a stored secret reaches a guest. */
export type SecretEgress = { mode: "auto" } | { mode: "raw" } | { mode: "hosts"; hosts: string[] };

/** A host a secret is bound to. */
export interface BoundHost {
  /** Lower-case DNS name. */
  name: string;
  port: number;
}

/** A secret the proxy substitutes: its placeholder, its value, and where it may go. */
export interface Substitution {
  name: string;
  placeholder: string;
  value: string;
  hosts: BoundHost[];
}

/** Raised for a bad `--host` value; the message names it and the accepted form. */
export class EgressBindingError extends Error {
  override name = "EgressBindingError";
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Prefix of every placeholder. */
export const PLACEHOLDER_PREFIX = "AEGIS_SECRET_";

/** The placeholder for a stored placeholder id (32 hex digits). */
export function placeholderFor(id: string): string {
  if (!/^[0-9a-f]{32}$/.test(id)) throw new Error(`invalid placeholder id "${id}"`);
  return `${PLACEHOLDER_PREFIX}${id}`;
}

/** A fresh random placeholder id (16 bytes, hex). */
export function newPlaceholderId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex");
}

/** Parse one `--host NAME[:PORT]` (a DNS name with two labels or more; IP addresses cannot be bound). */
export function parseBoundHost(text: string): BoundHost {
  const t = text.trim().toLowerCase().replace(/\.$/, "");
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(t);
  const form = "expected NAME[:PORT] such as api.openai.com or llm.example.com:8443";
  if (!m) throw new EgressBindingError(`invalid secret host "${text}": ${form}`);
  const name = m[1]!;
  const port = m[2] === undefined ? 443 : Number(m[2]);
  if (port < 1 || port > 65535) throw new EgressBindingError(`invalid secret host "${text}": port ${m[2]} is not 1-65535`);
  const labels = name.split(".");
  if (name.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels.at(-1)!)) {
    throw new EgressBindingError(`invalid secret host "${text}": "${name}" is not a DNS name with at least two labels (IP addresses cannot be bound); ${form}`);
  }
  return { name, port };
}

/** Canonical text of a bound host (`name` for 443, else `name:port`). */
export function boundHostText(h: BoundHost): string {
  return h.port === 443 ? h.name : `${h.name}:${h.port}`;
}

/** The LLM keys bound by default, with the env var naming their provider's base URL. */
export const PROVIDER_KEYS: Record<string, { baseUrlEnv: string; defaultBaseUrl: string }> = {
  OPENAI_API_KEY: { baseUrlEnv: "OPENAI_BASE_URL", defaultBaseUrl: "https://api.openai.com/v1" },
  ANTHROPIC_API_KEY: { baseUrlEnv: "ANTHROPIC_BASE_URL", defaultBaseUrl: "https://api.anthropic.com" },
};

/** The host of an `https://` URL with a DNS name, or undefined (not https, an IP literal, or not a URL). */
export function httpsHost(url: string): BoundHost | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "https:") return undefined;
  try {
    return parseBoundHost(u.port ? `${u.hostname}:${u.port}` : u.hostname);
  } catch {
    return undefined; // an IP literal or a single-label name: nothing DNS-bound to substitute for
  }
}

/**
 * Where secret `name` with binding `egress` is substituted in a VM whose
 * environment is `env`, or null when its value goes into the guest raw.
 */
export function secretHosts(name: string, egress: SecretEgress, env: Record<string, string>): BoundHost[] | null {
  if (egress.mode === "raw") return null;
  if (egress.mode === "hosts") return egress.hosts.map(parseBoundHost);
  const provider = PROVIDER_KEYS[name];
  if (!provider) return null;
  const host = httpsHost(env[provider.baseUrlEnv] ?? provider.defaultBaseUrl);
  return host ? [host] : null;
}

/** Human text of a substituted binding, for `secret list`; undefined for a secret whose value enters guests. */
export function describeEgress(name: string, egress: SecretEgress): string | undefined {
  if (egress.mode === "raw") return undefined;
  if (egress.mode === "hosts") return `kept out of guests, substituted for ${egress.hosts.join(", ")}`;
  const provider = PROVIDER_KEYS[name];
  if (!provider) return undefined;
  return `kept out of guests, substituted for the host of ${provider.baseUrlEnv} (default ${new URL(provider.defaultBaseUrl).hostname}; raw when that is not https)`;
}

/**
 * One header value with the placeholders of the secrets bound to
 * `host:port` replaced by their values; every other placeholder (a secret
 * bound elsewhere) is left as it is.
 */
export function substituteHeader(value: string, host: BoundHost, subs: Substitution[]): string {
  if (!value.includes(PLACEHOLDER_PREFIX)) return value;
  let out = value;
  for (const s of subs) {
    if (!s.hosts.some((h) => h.name === host.name && h.port === host.port)) continue;
    out = out.replaceAll(s.placeholder, s.value);
  }
  return out;
}

/** Node-style raw headers (`[name, value, name, value, ...]`) with {@link substituteHeader} applied to every value. */
export function substituteRawHeaders(raw: string[], host: BoundHost, subs: Substitution[]): string[] {
  return raw.map((v, i) => (i % 2 === 1 ? substituteHeader(v, host, subs) : v));
}

/** Every distinct host the substitutions are bound to. */
export function boundHosts(subs: Substitution[]): BoundHost[] {
  const seen = new Map<string, BoundHost>();
  for (const s of subs) for (const h of s.hosts) seen.set(`${h.name}:${h.port}`, h);
  return [...seen.values()];
}

/** Where the guest finds the Aegis egress CA alone (NODE_EXTRA_CA_CERTS). */
export const GUEST_CA_PATH = "/etc/ssl/certs/aegis-egress-ca.pem";

/**
 * The CA bundles of common distributions (Debian/Ubuntu/Alpine, Fedora/RHEL,
 * Alpine/BSD-style): each that exists in the guest's rootfs gets the CA
 * appended in the VM's writable layer; the first is created when none does.
 */
export const GUEST_BUNDLE_PATHS = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"] as const;

/** The environment that points TLS clients at the bundle (`bundle`: the guest path holding system CAs + ours). */
export function trustEnv(bundle: string): Record<string, string> {
  return { SSL_CERT_FILE: bundle, NODE_EXTRA_CA_CERTS: GUEST_CA_PATH, REQUESTS_CA_BUNDLE: bundle, CURL_CA_BUNDLE: bundle };
}
