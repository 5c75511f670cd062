/**
 * @module daemon/e2b/network
 * E2B's sandbox network options mapped onto Aegis's egress policy
 * (api/network-policy.ts), both ways: what `Sandbox.create({
 * allowInternetAccess, network })` sends (e2b SDK 2.51: `allow_internet_access`
 * and `network: { allowOut, denyOut, rules, egressProxy, allowPublicTraffic,
 * maskRequestHost, httpsPorts }`) becomes the sandbox's stored policy, and
 * `GET /sandboxes/{id}` reports the policy back in E2B's shape.
 *
 * E2B's semantics, kept: `allowOut` entries (CIDR, IP, domain, `*.domain`)
 * take precedence over `denyOut` entries, so the Aegis rule list is every
 * allow in order, then every deny, then the default; `0.0.0.0/0` (the SDK's
 * `allTraffic`) is every destination (Aegis `*`, IPv6 included);
 * `allowInternetAccess: false` is `denyOut: [allTraffic]`, which without any
 * `allowOut` is Aegis's `--no-network`. Entries may also use Aegis's own
 * forms (`:PORT`, `host:PORT`, domains in `denyOut`); E2B's cloud refuses a
 * domain in `denyOut`, Aegis can enforce it, so it takes it. A sandbox made
 * from an app template without network options keeps the app's policy;
 * reported back as E2B's two lists, a policy in another order than
 * allows-then-denies is an approximation (`aegis instance info` shows it exactly).
 *
 * Refused, never ignored (each names the field): header transforms
 * (`rules`), a SOCKS5 `egressProxy`, `maskRequestHost`, `httpsPorts`, and
 * `allowPublicTraffic: false` (the router serves sandbox ports on loopback
 * without a traffic token, which is `allowPublicTraffic: true`). Changing a
 * running sandbox's network (`PUT /sandboxes/{id}/network`) is refused too:
 * a sandbox keeps the policy it was created with.
 */
import { z } from "zod";
import { InvalidRequest } from "../../api/errors.ts";
import { type NetworkPolicy, type NetworkRule, NetworkRuleError, parseRules } from "../../api/network-policy.ts";

const Entries = z.array(z.string().min(1).max(300)).max(128, "at most 128 entries");

/** The `network` object of a create body, as the pinned SDK sends it; unknown fields are refused. */
export const E2bNetwork = z
  .object({
    allowOut: Entries.optional(),
    denyOut: Entries.optional(),
    rules: z.record(z.string(), z.unknown()).optional(),
    egressProxy: z.unknown().optional(),
    allowPublicTraffic: z.boolean().optional(),
    maskRequestHost: z.string().optional(),
    httpsPorts: z.array(z.number()).optional(),
  })
  .strict();
export type E2bNetwork = z.infer<typeof E2bNetwork>;

/** E2B's "all traffic" sentinel. */
const ALL_TRAFFIC = "0.0.0.0/0";

/** One E2B entry as an Aegis RULE (IPv6 gets its brackets; all traffic is `*`). */
function toRule(entry: string): string {
  const e = entry.trim().toLowerCase();
  if (e === ALL_TRAFFIC || e === "::/0") return "*";
  if (e.includes(":") && !e.startsWith("[") && e.split(":").length > 2) return `[${e}]`;
  return e;
}

/** An Aegis RULE as E2B writes it (inverse of {@link toRule}). */
function fromRule(target: string): string {
  if (target === "*") return ALL_TRAFFIC;
  const v6 = /^\[([^\]]+)\]$/.exec(target);
  return v6 ? v6[1]! : target;
}

function refuse(field: string, why: string, hint: string): never {
  throw new InvalidRequest(`network.${field} is not supported by Aegis's E2B API: ${why}`, hint);
}

/**
 * The policy of a new sandbox from E2B's create options, or undefined when
 * they ask for nothing (the template's policy, else the default, applies).
 * @throws InvalidRequest naming the field or the entry that cannot be honoured
 */
export function policyFromE2b(allowInternetAccess: boolean | undefined, network: E2bNetwork | undefined): NetworkPolicy | undefined {
  const n = network ?? {};
  if (n.rules !== undefined && Object.keys(n.rules).length > 0) {
    refuse("rules", "header transforms need the egress proxy", "omit network.rules; keep credentials out of the sandbox with 'aegis secret' instead");
  }
  if (n.egressProxy !== undefined && n.egressProxy !== null) refuse("egressProxy", "traffic goes out through the host's NAT, not a SOCKS5 proxy", "omit network.egressProxy");
  if (n.maskRequestHost !== undefined) refuse("maskRequestHost", "the router passes the request's Host through unchanged", "omit network.maskRequestHost");
  if (n.httpsPorts !== undefined && n.httpsPorts.length > 0) refuse("httpsPorts", "the router reaches sandbox ports over plain HTTP", "omit network.httpsPorts, or serve plain HTTP on those ports");
  if (n.allowPublicTraffic === false) {
    refuse("allowPublicTraffic", "sandbox URLs are served on the host's loopback without a traffic access token", "omit network.allowPublicTraffic (or set it to true)");
  }
  const rules: NetworkRule[] = [];
  for (const [field, action] of [["allowOut", "allow"], ["denyOut", "deny"]] as const) {
    (n[field] ?? []).forEach((entry, i) => {
      const rule: NetworkRule = { action, target: toRule(entry) };
      try {
        parseRules([rule]);
      } catch (err) {
        if (!(err instanceof NetworkRuleError)) throw err;
        throw new InvalidRequest(`network.${field}[${i}] "${entry}": ${err.message}`, "E2B entries are a CIDR block, an IP address, a domain or *.domain");
      }
      rules.push(rule);
    });
  }
  if (allowInternetAccess === false) {
    if (rules.every((r) => r.action === "deny")) return { mode: "none", rules: [] };
    rules.push({ action: "deny", target: "*" });
  }
  return rules.length > 0 ? { mode: "default", rules } : undefined;
}

/** What `GET /sandboxes/{id}` reports of a sandbox's policy. */
export function e2bNetworkInfo(policy: NetworkPolicy): { allowInternetAccess: boolean; network?: { allowOut?: string[]; denyOut?: string[] } } {
  if (policy.mode === "none") return { allowInternetAccess: false };
  const allowOut = policy.rules.filter((r) => r.action === "allow").map((r) => fromRule(r.target));
  const denyOut = policy.rules.filter((r) => r.action === "deny").map((r) => fromRule(r.target));
  const network = { ...(allowOut.length > 0 ? { allowOut } : {}), ...(denyOut.length > 0 ? { denyOut } : {}) };
  return { allowInternetAccess: !denyOut.includes(ALL_TRAFFIC), ...(Object.keys(network).length > 0 ? { network } : {}) };
}
