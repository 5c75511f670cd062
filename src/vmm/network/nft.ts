/**
 * @module vmm/network/nft
 * The host-side nftables rules of VM egress policy, as pure text builders
 * (unit-tested) plus the one function that feeds them to `nft -f -`.
 *
 * One table `inet aegis`, shared by every aegisd on the machine:
 * - `forward` (what a VM's network namespace sends through the host):
 *   `iifname vmap @vm_fwd` jumps to the VM's chain `vm<N>`; an `aegis*`
 *   interface with no entry (being set up, or stale) is refused, and nothing
 *   may open a connection into a VM's namespace from outside.
 * - `input` (what a VM sends to the host itself, i.e. every host-own
 *   address): `iifname vmap @vm_inp` jumps to `vm<N>_in`, which accepts replies
 *   and the VM's DNS resolver (UDP and TCP 53 on the host end of its veth) only.
 * - `prerouting` (nat): `iifname vmap @vm_pre` jumps to `vm<N>_pre`, which
 *   diverts the port-443 connections an `allow DOMAIN` rule admits to the
 *   VM's TLS server-name gate (sni-gate.ts; {@link gateRules}).
 * - `postrouting`: masquerade what the VMs send out.
 * - `refuse`: TCP reset, otherwise ICMP port unreachable, so a refused
 *   connect fails at once in the guest instead of timing out.
 *
 * A VM chain is: replies accepted; loopback and the instance network of all
 * VMs refused (before the user's rules: not overridable); the user's rules
 * in order, each compiled to exactly one nft rule (nft evaluates in order,
 * so first match wins as in the policy); the default deny of private and
 * special ranges; accept. Domain rules match a per-rule set filled from the
 * VM's DNS answers (dns.ts) with timeouts.
 */
import { parseRules, type NetworkPolicy, type RuleTarget } from "../../api/network-policy.ts";

/** The table every aegisd shares. */
export const TABLE = "inet aegis";

/** Prefix of the host end of each VM's veth (`aegis<N>`: at most 10 of the 15 characters allowed). */
export const IFACE_PREFIX = "aegis";

/** The instance network: one /30 per VM slot. */
export const POOL = "10.231.0.0/16";

/** IPv4 ranges refused by default (RFC 1918, CGNAT, link-local incl. 169.254.169.254, this-network, IETF, multicast, reserved, broadcast). */
export const DEFAULT_DENY_V4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/3"];

/** IPv6 ranges refused by default (ULA, link-local, site-local incl. slirp's fec0::/64, mapped IPv4, multicast, loopback). */
export const DEFAULT_DENY_V6 = ["::1/128", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"];

/** Addresses of VM slot `n` (1..16382): host end `.1`, namespace end `.2` of its /30. */
export function slotAddresses(n: number): { host: string; ns: string; iface: string; chain: string } {
  if (!Number.isInteger(n) || n < 1 || n > 16382) throw new Error(`network slot ${n} is outside 1-16382`);
  const off = n * 4;
  const base = `10.231.${off >> 8}.`;
  return { host: `${base}${(off & 255) + 1}`, ns: `${base}${(off & 255) + 2}`, iface: `${IFACE_PREFIX}${n}`, chain: `vm${n}` };
}

/** The statements that create the shared table once (idempotent only as a whole: callers check it exists first). */
export function baseTable(): string {
  return [
    `add table ${TABLE}`,
    `add chain ${TABLE} refuse`,
    `add rule ${TABLE} refuse meta l4proto tcp reject with tcp reset`,
    `add rule ${TABLE} refuse reject`,
    `add map ${TABLE} vm_fwd { type ifname : verdict; }`,
    `add map ${TABLE} vm_inp { type ifname : verdict; }`,
    `add chain ${TABLE} forward { type filter hook forward priority -10; policy accept; }`,
    `add rule ${TABLE} forward iifname vmap @vm_fwd`,
    `add rule ${TABLE} forward iifname "${IFACE_PREFIX}*" goto refuse`,
    `add rule ${TABLE} forward oifname "${IFACE_PREFIX}*" ct state established,related accept`,
    `add rule ${TABLE} forward oifname "${IFACE_PREFIX}*" goto refuse`,
    `add chain ${TABLE} input { type filter hook input priority -10; policy accept; }`,
    `add rule ${TABLE} input iifname vmap @vm_inp`,
    `add rule ${TABLE} input iifname "${IFACE_PREFIX}*" goto refuse`,
    gatePlumbing().trimEnd(),
    `add chain ${TABLE} postrouting { type nat hook postrouting priority 100; policy accept; }`,
    `add rule ${TABLE} postrouting ip saddr ${POOL} oifname != "${IFACE_PREFIX}*" masquerade`,
    "",
  ].join("\n");
}

/**
 * The shared prerouting hook of the server-name gates. Safe to apply to a
 * table an older aegisd created without it: `add` of an existing map or
 * chain is a no-op, and the chain's one rule is rewritten.
 */
export function gatePlumbing(): string {
  return [
    `add map ${TABLE} vm_pre { type ifname : verdict; }`,
    `add chain ${TABLE} prerouting { type nat hook prerouting priority -100; policy accept; }`,
    `flush chain ${TABLE} prerouting`,
    `add rule ${TABLE} prerouting iifname vmap @vm_pre`,
    "",
  ].join("\n");
}

/**
 * The rules of VM `n`'s `vm<N>_pre` chain: the same first-match walk as its
 * filter chain, over IPv4, where an `allow DOMAIN` (any port, or 443) rule's
 * TCP 443 is sent to the gate on the host end of the veth, and every other
 * match returns (the filter then decides, so an earlier deny still refuses).
 */
export function gateRules(n: number, targets: RuleTarget[], policy: NetworkPolicy, gatePort: number): string[] {
  const { host, chain } = slotAddresses(n);
  const out = [`ip daddr { 127.0.0.0/8, ${POOL} } return`];
  targets.forEach((t, k) => {
    if (t.kind === "host") return;
    const [v4] = compileRule(chain, k, t, "allow").map((body) => body.replace(/accept$/, ""));
    if (t.kind === "cidr" && t.family === 6) return;
    if (t.kind === "domain" && policy.rules[k]!.action === "allow" && (t.port === undefined || t.port === 443)) {
      out.push(`ip daddr @${domainSet(chain, k, 4)} tcp dport 443 dnat ip to ${host}:${gatePort}`);
    }
    out.push(`${v4}return`);
  });
  return out;
}

/** Name of the address set of domain rule `k` of VM chain `chain` (`family` 6 for the IPv6 one). */
export function domainSet(chain: string, k: number, family: 4 | 6): string {
  return `${chain}_r${k}${family === 6 ? "_6" : ""}`;
}

function portMatch(port: number | undefined): string {
  return port === undefined ? "" : `meta l4proto { tcp, udp } th dport ${port} `;
}

/** The nft rule body (after `add rule TABLE CHAIN`) of one user rule; undefined for `host:PORT` (not an nft rule). */
export function compileRule(chain: string, k: number, t: RuleTarget, action: "allow" | "deny"): string[] {
  const verdict = action === "allow" ? "accept" : "goto refuse";
  switch (t.kind) {
    case "host":
      return [];
    case "any":
      return [`${portMatch(t.port)}${verdict}`];
    case "cidr":
      return [`${t.family === 4 ? "ip" : "ip6"} daddr ${t.address}/${t.prefix} ${portMatch(t.port)}${verdict}`];
    case "domain":
      return [`ip daddr @${domainSet(chain, k, 4)} ${portMatch(t.port)}${verdict}`, `ip6 daddr @${domainSet(chain, k, 6)} ${portMatch(t.port)}${verdict}`];
  }
}

/** Everything one VM adds to the table (its chains, sets and map entries); `gatePort`: divert to a server-name gate there. */
export function vmRules(n: number, policy: NetworkPolicy, gatePort?: number): string {
  const { host, iface, chain } = slotAddresses(n);
  const inChain = `${chain}_in`;
  const out: string[] = [`add chain ${TABLE} ${chain}`, `add chain ${TABLE} ${inChain}`];
  const targets = policy.mode === "none" ? [] : parseRules(policy.rules);
  targets.forEach((t, k) => {
    if (t.kind !== "domain") return;
    out.push(`add set ${TABLE} ${domainSet(chain, k, 4)} { type ipv4_addr; flags timeout; }`);
    out.push(`add set ${TABLE} ${domainSet(chain, k, 6)} { type ipv6_addr; flags timeout; }`);
  });
  const rule = (c: string, body: string) => out.push(`add rule ${TABLE} ${c} ${body}`);
  rule(chain, "ct state established,related accept");
  if (policy.mode === "none") {
    rule(chain, "goto refuse");
  } else {
    rule(chain, `ip daddr { 127.0.0.0/8, ${POOL} } goto refuse`);
    targets.forEach((t, k) => {
      for (const body of compileRule(chain, k, t, policy.rules[k]!.action)) rule(chain, body);
    });
    rule(chain, `ip daddr { ${DEFAULT_DENY_V4.join(", ")} } goto refuse`);
    rule(chain, `ip6 daddr { ${DEFAULT_DENY_V6.join(", ")} } goto refuse`);
    rule(chain, "accept");
  }
  rule(inChain, "ct state established,related accept");
  if (policy.mode !== "none") rule(inChain, `ip daddr ${host} meta l4proto { tcp, udp } th dport 53 accept`);
  if (gatePort !== undefined) rule(inChain, `ip daddr ${host} tcp dport ${gatePort} accept`);
  rule(inChain, "goto refuse");
  if (gatePort !== undefined) {
    out.push(`add chain ${TABLE} ${chain}_pre`);
    for (const body of gateRules(n, targets, policy, gatePort)) rule(`${chain}_pre`, body);
    out.push(`add element ${TABLE} vm_pre { "${iface}" : jump ${chain}_pre }`);
  }
  out.push(`add element ${TABLE} vm_fwd { "${iface}" : jump ${chain} }`);
  out.push(`add element ${TABLE} vm_inp { "${iface}" : jump ${inChain} }`);
  return `${out.join("\n")}\n`;
}

/** What removes one VM's entries, given the names of its sets (from {@link vmRules} or a listing of the table). */
export function vmTeardown(n: number, sets: string[], present: { fwd: boolean; inp: boolean; chains: boolean; pre?: boolean; preChain?: boolean } = { fwd: true, inp: true, chains: true }): string {
  const { iface, chain } = slotAddresses(n);
  const out: string[] = [];
  if (present.pre) out.push(`delete element ${TABLE} vm_pre { "${iface}" }`);
  if (present.preChain) out.push(`flush chain ${TABLE} ${chain}_pre`, `delete chain ${TABLE} ${chain}_pre`);
  if (present.fwd) out.push(`delete element ${TABLE} vm_fwd { "${iface}" }`);
  if (present.inp) out.push(`delete element ${TABLE} vm_inp { "${iface}" }`);
  if (present.chains) {
    out.push(`flush chain ${TABLE} ${chain}`, `flush chain ${TABLE} ${chain}_in`, `delete chain ${TABLE} ${chain}`, `delete chain ${TABLE} ${chain}_in`);
  }
  for (const s of sets) out.push(`delete set ${TABLE} ${s}`);
  return `${out.join("\n")}\n`;
}

/** Run an nft script (atomically: nft applies a file as one transaction). Throws with nft's message on failure. */
export async function runNft(script: string, args: string[] = ["-f", "-"]): Promise<string> {
  const proc = Bun.spawn(["nft", ...args], { stdin: new Blob([script]), stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`nft ${args.join(" ")} failed (exit ${code}): ${err.trim() || out.trim()}`);
  return out;
}
