/**
 * @module api/network-policy
 * A VM's egress policy as data: parsing `--allow RULE` / `--deny RULE`
 * strings (with errors that say what is wrong and what to write), the
 * ordered first-match evaluation, and the built-in default. Pure: shared by
 * the CLI (early errors), the API schema, and the host plumbing
 * (vmm/network/nft.ts compiles it one-to-one to nftables rules).
 *
 * RULE is one of
 * - `CIDR[:PORT]` or `IP[:PORT]` (IPv4; IPv6 as `[ADDR]` or `[ADDR/LEN]`, with `:PORT` after the bracket);
 * - `DOMAIN[:PORT]` or `*.DOMAIN[:PORT]`: the addresses the VM's own DNS
 *   answers gave for that name (a CNAME chain included), for as long as the
 *   answer's TTL (at least 60 s);
 * - `*[:PORT]`: any destination (e.g. `--deny '*'` after a few allows:
 *   nothing else on the internet);
 * - `host:PORT` (allow only): the host's own 127.0.0.1:PORT, reached from
 *   the guest at 10.0.2.2:PORT, as it was before policies existed.
 *
 * Order: the user's rules in the order given, first match wins; then the
 * default. The default refuses private and special ranges (RFC 1918, CGNAT,
 * loopback, link-local with cloud metadata, multicast, IPv6 ULA/link-local)
 * and accepts the rest (the public internet). Never overridable, because
 * they are enforced before the user's rules: the host's loopback and own
 * addresses (except `host:PORT`) and the instance network of other VMs.
 */

/** One rule as stored and sent over the API. */
export interface NetworkRule {
  action: "allow" | "deny";
  /** The RULE text, as the user wrote it (normalised). */
  target: string;
}

/** A VM's network settings. */
export interface NetworkPolicy {
  /** `none`: no route anywhere (`--no-network`); `default`: the default plus `rules`. */
  mode: "default" | "none";
  rules: NetworkRule[];
}

/** The policy of a VM nobody configured. */
export const DEFAULT_NETWORK: NetworkPolicy = { mode: "default", rules: [] };

/** A parsed RULE target. */
export type RuleTarget =
  | { kind: "cidr"; family: 4 | 6; address: string; prefix: number; port?: number }
  | { kind: "domain"; name: string; wildcard: boolean; port?: number }
  | { kind: "any"; port?: number }
  | { kind: "host"; port: number };

/** Raised for a RULE that does not parse; the message names the rule and the accepted forms. */
export class NetworkRuleError extends Error {
  override name = "NetworkRuleError";
}

const FORMS = "expected CIDR[:PORT] (10.0.0.0/8, 192.168.1.5:5432, [fd00::/8]:443), DOMAIN[:PORT] or *.DOMAIN[:PORT] (api.example.com:443), '*'[:PORT], or host:PORT";

function bad(rule: string, why: string): NetworkRuleError {
  return new NetworkRuleError(`invalid network rule "${rule}": ${why}; ${FORMS}`);
}

function parsePort(rule: string, s: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw bad(rule, `port "${s}" is not 1-65535`);
  return Number(s);
}

/** Parse a dotted IPv4 address into its four octets, or undefined. */
export function ipv4Octets(s: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  return o.every((x) => x <= 255) ? o : undefined;
}

/** Parse an IPv6 address into 8 groups, or undefined. */
export function ipv6Groups(s: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split("::").length > 2) return undefined;
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const part = (p: string | undefined) => (p ? p.split(":") : []);
  const h = part(head);
  const t = part(tail);
  const groups = (xs: string[]) => xs.map((x) => (/^[0-9a-fA-F]{1,4}$/.test(x) ? parseInt(x, 16) : NaN));
  const hg = groups(h);
  const tg = groups(t);
  if ([...hg, ...tg].some(Number.isNaN)) return undefined;
  if (tail === undefined) return hg.length === 8 ? hg : undefined;
  if (hg.length + tg.length > 7) return undefined;
  return [...hg, ...Array(8 - hg.length - tg.length).fill(0), ...tg];
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Parse one RULE (the part after `--allow` / `--deny`). */
export function parseRuleTarget(rule: string): RuleTarget {
  const r = rule.trim().toLowerCase();
  if (r === "") throw bad(rule, "it is empty");
  // [IPv6] or [IPv6/len], optionally :PORT
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(r);
  if (v6) {
    const [addr, len] = v6[1]!.split("/");
    if (!ipv6Groups(addr!)) throw bad(rule, `"${addr}" is not an IPv6 address`);
    const prefix = len === undefined ? 128 : Number(len);
    if (len !== undefined && (!/^\d{1,3}$/.test(len) || prefix > 128)) throw bad(rule, `prefix length "/${len}" is not 0-128`);
    return { kind: "cidr", family: 6, address: addr!, prefix, ...(v6[2] !== undefined ? { port: parsePort(rule, v6[2]) } : {}) };
  }
  const colon = r.lastIndexOf(":");
  if (colon >= 0 && r.indexOf(":") !== colon) throw bad(rule, "write an IPv6 address in brackets, e.g. [fd00::1]:443");
  const main = colon >= 0 ? r.slice(0, colon) : r;
  const port = colon >= 0 ? parsePort(rule, r.slice(colon + 1)) : undefined;
  const withPort = port === undefined ? {} : { port };
  if (main === "host") {
    if (port === undefined) throw bad(rule, "host needs a port (host:PORT reaches one service on the host's 127.0.0.1)");
    return { kind: "host", port };
  }
  if (main === "*") return { kind: "any", ...withPort };
  const [addr, len] = main.split("/");
  if (/^[\d.]+$/.test(addr!)) {
    const o = ipv4Octets(addr!);
    if (!o) throw bad(rule, `"${addr}" is not an IPv4 address`);
    const prefix = len === undefined ? 32 : Number(len);
    if (len !== undefined && (!/^\d{1,2}$/.test(len) || prefix > 32)) throw bad(rule, `prefix length "/${len}" is not 0-32`);
    return { kind: "cidr", family: 4, address: addr!, prefix, ...withPort };
  }
  if (len !== undefined) throw bad(rule, "a domain takes no /prefix");
  const wildcard = main.startsWith("*.");
  const name = wildcard ? main.slice(2) : main;
  const labels = name.split(".");
  if (name.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels.at(-1)!)) {
    throw bad(rule, `"${main}" is not a domain name with at least two labels`);
  }
  return { kind: "domain", name, wildcard, ...withPort };
}

/** Parse and check a whole rule list (also rejects `--deny host:PORT`, which the default already does). */
export function parseRules(rules: NetworkRule[]): RuleTarget[] {
  return rules.map((r) => {
    const t = parseRuleTarget(r.target);
    if (t.kind === "host" && r.action === "deny") throw new NetworkRuleError(`--deny ${r.target} is not needed: the host's services are refused unless allowed with --allow host:PORT`);
    return t;
  });
}

/** True when `name` (a DNS name, any case, trailing dot allowed) is covered by a domain target. */
export function domainMatches(t: { name: string; wildcard: boolean }, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return t.wildcard ? n.endsWith(`.${t.name}`) : n === t.name;
}

/** The host ports `--allow host:PORT` opens. */
export function hostPorts(policy: NetworkPolicy): number[] {
  if (policy.mode === "none") return [];
  return parseRules(policy.rules).flatMap((t) => (t.kind === "host" ? [t.port] : []));
}

/**
 * A child's policy under its parent's (MCP `instance_spawn`): a child never
 * gets more than its parent. Without a policy of its own it inherits the
 * parent's. Otherwise every allow it asks for must be one of the parent's
 * allows (same text), and its list is the parent's denies, then its own
 * rules, then the parent's list: whatever the parent refuses, at any
 * position, the child refuses first, so it can only be narrower.
 */
export function narrowPolicy(parent: NetworkPolicy, child: NetworkPolicy | undefined): NetworkPolicy {
  if (!child) return parent;
  if (parent.mode === "none" || child.mode === "none") return { mode: "none", rules: [] };
  const parentAllows = new Set(parent.rules.filter((r) => r.action === "allow").map((r) => r.target));
  for (const r of child.rules) {
    if (r.action === "allow" && !parentAllows.has(r.target)) {
      throw new NetworkRuleError(`a spawned instance cannot be given --allow ${r.target}: its parent's policy does not allow it (a child never gets more network than its parent)`);
    }
  }
  return { mode: "default", rules: [...parent.rules.filter((r) => r.action === "deny"), ...child.rules, ...parent.rules] };
}

/** One line per rule for `instance info` (and the default, so the user sees the whole policy). */
export function describePolicy(policy: NetworkPolicy): string[] {
  if (policy.mode === "none") return ["none (--no-network: no route anywhere)"];
  return [...policy.rules.map((r) => `${r.action} ${r.target}`), "default: public internet allowed; host, other VMs and private ranges refused"];
}
