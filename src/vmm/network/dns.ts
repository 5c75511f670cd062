/**
 * @module vmm/network/dns
 * The DNS resolver each VM uses: a UDP forwarder on the host end of the VM's
 * veth, port 53 (slirp's 10.0.2.3 forwards there, because the VM's namespace
 * resolv.conf names it). It relays queries to the host's upstream resolver
 * (`AEGIS_DNS_UPSTREAM` = `IP[:PORT]`, else the first `nameserver` of
 * /etc/resolv.conf) and, before it hands an answer to the guest, adds the
 * answer's addresses to the nft set of every domain rule the name matches
 * (the question, or any name in the answer's CNAME chain), with the answer's
 * TTL (at least 60 s). So a domain rule admits exactly the addresses the
 * guest was told, and a connect right after the answer never races the set.
 *
 * Bounds (the guest is hostile): queries over 4096 bytes or that do not
 * parse are dropped, at most 128 queries wait upstream per VM, each for 5 s.
 * DNS over TCP (slirp passes the guest's TCP to 10.0.2.3:53 to the same
 * address) is served by dns-tcp.ts, with the same answer recording.
 */
import dnsPacket from "dns-packet";
import { readFileSync } from "node:fs";
import { domainMatches, type RuleTarget } from "../../api/network-policy.ts";
import { domainSet, runNft, TABLE } from "./nft.ts";
import { TcpResolver } from "./dns-tcp.ts";

const MAX_QUERY = 4096;
const MAX_PENDING = 128;
const UPSTREAM_TIMEOUT_MS = 5000;
const MIN_TTL_S = 60;

/** The upstream resolver (host, port). */
export function upstreamResolver(env = process.env, resolvConf = "/etc/resolv.conf"): { host: string; port: number } {
  const raw = env.AEGIS_DNS_UPSTREAM;
  if (raw) {
    const m = /^([\d.]+)(?::(\d+))?$/.exec(raw);
    if (!m) throw new Error(`AEGIS_DNS_UPSTREAM=${raw} is not IPv4[:PORT]`);
    return { host: m[1]!, port: Number(m[2] ?? 53) };
  }
  const text = readFileSync(resolvConf, "utf8");
  const ns = /^\s*nameserver\s+([\d.]+)\s*$/m.exec(text);
  if (!ns) throw new Error(`no IPv4 nameserver in ${resolvConf}\nhint: set AEGIS_DNS_UPSTREAM=IP[:PORT]`);
  return { host: ns[1]!, port: 53 };
}

/** A domain rule of the VM: its index in the rule list and its target. */
export interface DomainRule {
  index: number;
  target: Extract<RuleTarget, { kind: "domain" }>;
}

/** The set elements an answer adds: `set name -> [address, timeout s]`. Pure. */
export function answerElements(chain: string, rules: DomainRule[], response: dnsPacket.Packet): Map<string, [string, number][]> {
  const out = new Map<string, [string, number][]>();
  const names = new Set<string>((response.questions ?? []).map((q) => q.name.toLowerCase()));
  for (const a of response.answers ?? []) if (a.type === "CNAME") names.add(String(a.data).toLowerCase());
  for (const r of rules) {
    if (![...names].some((n) => domainMatches(r.target, n))) continue;
    for (const a of response.answers ?? []) {
      if (a.type !== "A" && a.type !== "AAAA") continue;
      const set = domainSet(chain, r.index, a.type === "A" ? 4 : 6);
      const list = out.get(set) ?? [];
      list.push([String(a.data), Math.max(MIN_TTL_S, a.ttl ?? 0)]);
      out.set(set, list);
    }
  }
  return out;
}

/** nft statements for {@link answerElements}' result (delete-then-add refreshes a timeout; nft has no update). */
export function elementScript(elements: Map<string, [string, number][]>, withDelete: boolean): string {
  const lines: string[] = [];
  for (const [set, list] of elements) {
    const addrs = list.map(([a]) => a).join(", ");
    if (withDelete) lines.push(`delete element ${TABLE} ${set} { ${addrs} }`);
    lines.push(`add element ${TABLE} ${set} { ${list.map(([a, t]) => `${a} timeout ${t}s`).join(", ")} }`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Record an upstream answer in the VM's domain-rule sets before the guest
 * sees it. Returns false when the answer does not decode (then it must not
 * reach the guest: its addresses could not be recorded).
 */
export async function recordAnswer(buf: Buffer, chain: string, rules: DomainRule[], log: (msg: string, fields?: Record<string, unknown>) => void): Promise<boolean> {
  if (rules.length === 0) return true;
  let decoded: dnsPacket.Packet;
  try {
    decoded = dnsPacket.decode(buf);
  } catch (err) {
    log("dns: undecodable upstream answer dropped", { chain, error: String(err) });
    return false;
  }
  const elements = answerElements(chain, rules, decoded);
  if (elements.size > 0) {
    try {
      await runNft(elementScript(elements, true));
    } catch {
      // Some element was not there yet (delete failed, the batch did nothing): add only.
      await runNft(elementScript(elements, false)).catch((err: unknown) => log("dns: could not record an answer in the policy sets", { chain, error: String(err) }));
    }
  }
  return true;
}

interface Pending {
  port: number;
  address: string;
  id: number;
  timer: ReturnType<typeof setTimeout>;
}

/** One VM's resolver. */
export class VmResolver {
  private readonly pending = new Map<number, Pending>();
  private tcp?: TcpResolver;
  private constructor(
    private readonly server: Bun.udp.Socket<"buffer">,
    private readonly client: Bun.udp.Socket<"buffer">,
  ) {}

  /** Listen on `host:53` for the VM whose nft chain is `chain`. */
  static async start(host: string, chain: string, rules: DomainRule[], log: (msg: string, fields?: Record<string, unknown>) => void): Promise<VmResolver> {
    const upstream = upstreamResolver();
    let self: VmResolver | undefined;
    const client = await Bun.udpSocket({
      socket: {
        data: (_s, buf) => void self?.onAnswer(buf, chain, rules, log),
      },
    });
    const server = await Bun.udpSocket({
      hostname: host,
      port: 53,
      socket: {
        data: (_s, buf, port, address) => self?.onQuery(buf, port, address, upstream),
      },
    });
    self = new VmResolver(server, client);
    try {
      self.tcp = await TcpResolver.start(host, upstream, (buf) => recordAnswer(buf, chain, rules, log));
    } catch (err) {
      self.close();
      throw err;
    }
    return self;
  }

  private onQuery(buf: Buffer, port: number, address: string, upstream: { host: string; port: number }): void {
    if (buf.length < 12 || buf.length > MAX_QUERY || this.pending.size >= MAX_PENDING) return;
    const id = buf.readUInt16BE(0);
    let fwdId: number;
    do fwdId = Math.floor(Math.random() * 65536);
    while (this.pending.has(fwdId));
    const timer = setTimeout(() => this.pending.delete(fwdId), UPSTREAM_TIMEOUT_MS);
    this.pending.set(fwdId, { port, address, id, timer });
    const out = Buffer.from(buf);
    out.writeUInt16BE(fwdId, 0);
    this.client.send(out, upstream.port, upstream.host);
  }

  private async onAnswer(buf: Buffer, chain: string, rules: DomainRule[], log: (msg: string, fields?: Record<string, unknown>) => void): Promise<void> {
    if (buf.length < 12) return;
    const p = this.pending.get(buf.readUInt16BE(0));
    if (!p) return;
    this.pending.delete(buf.readUInt16BE(0));
    clearTimeout(p.timer);
    if (!(await recordAnswer(buf, chain, rules, log))) return;
    const out = Buffer.from(buf);
    out.writeUInt16BE(p.id, 0);
    this.server.send(out, p.port, p.address);
  }

  /** Stop answering. */
  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.server.close();
    this.client.close();
    this.tcp?.close();
  }
}
