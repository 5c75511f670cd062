/**
 * @module vmm/network/egress-proxy
 * The host-side egress proxy that keeps secrets out of the guest
 * (api/egress-secrets.ts): a VM granted substituted secrets sees only
 * placeholders; its TLS connections to the hosts those secrets are bound to
 * end here, and the real value goes into the request headers on the way out.
 *
 * Routing, per VM (isolated mode only, see index.ts):
 * - the VM's DNS resolver (dns.ts) records the addresses it tells the guest
 *   for each bound name in a set `vm<N>_r<9000+k>` (the mechanism of domain
 *   rules, with indexes no user rule reaches);
 * - a nat `prerouting` chain `vm<N>_eg` (jumped to from the shared
 *   `egress_pre` hook, priority -110: before any other nat prerouting chain,
 *   so a bound host's connection comes here even when another diversion,
 *   e.g. a server-name gate, would take port 443; the first NAT binding of a
 *   connection wins) DNATs the guest's TCP to those
 *   addresses on the bound port to this proxy on the host end of the VM's
 *   veth (the listener tells the VM apart), and the VM's input chain accepts
 *   that port. Connections to any other address, and plain HTTP, never come
 *   here: a placeholder sent elsewhere goes out unchanged.
 *
 * Per connection: the TLS server name (SNI) must be a host bound on that
 * port and allowed by the VM's policy ({@link nameAllowed}), otherwise the
 * handshake is refused (no SNI: refused; a different site sharing a bound
 * host's address is refused too). The proxy answers with a leaf for that
 * name from the AEGIS_HOME CA (egress-ca.ts), parses each HTTP/1.1 request
 * (node:http), replaces the placeholders of the secrets bound to that host
 * in every header value (never in the URL or the body), and re-originates
 * the request over TLS to the same name, resolved by the host and verified
 * against the host's trust store (the system bundle, else Bun's roots). The
 * response streams back unchanged (SSE included). Upgrade requests
 * (WebSocket) to bound hosts are not supported.
 *
 * Test-only knobs (never set them in production; they are read by aegisd):
 * - `AEGIS_EGRESS_EXTRA_CA=FILE`: also trust the CAs in FILE upstream (the
 *   tests' TLS stand-ins);
 * - `AEGIS_EGRESS_CONNECT=NAME[:PORT]=IP:PORT,...`: connect there instead of
 *   resolving NAME (still verifying the certificate for NAME), so a test's
 *   loopback stand-in can play api.openai.com.
 *
 * Bounds: 256 connections per listener, 16 KiB of request head (node's
 * default), idle guest connections closed after 5 min.
 */
import { existsSync, readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer as createTlsServer, rootCertificates, type Server, type TLSSocket } from "node:tls";
import { type BoundHost, GUEST_BUNDLE_PATHS, substituteRawHeaders, type Substitution } from "../../api/egress-secrets.ts";
import { domainMatches, type NetworkPolicy, parseRules } from "../../api/network-policy.ts";
import type { EgressCa } from "./egress-ca.ts";
import { TABLE, domainSet, runNft } from "./nft.ts";

/** First domain-rule index of the sets that hold bound hosts' addresses (user rules never get this far). */
export const EGRESS_SET_BASE = 9000;

const MAX_CONNECTIONS = 256;
const IDLE_MS = 300_000;
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "transfer-encoding", "upgrade", "te", "trailer", "host"]);

/** Substituted secrets of running VMs, by VM id: filled by the daemon at boot, never written anywhere. */
const substitutions = new Map<string, Substitution[]>();

/** Give VM `vmId`'s proxy its secrets (replacing what it had). */
export function registerSubstitutions(vmId: string, subs: Substitution[]): void {
  substitutions.set(vmId, subs);
}

/** Forget VM `vmId`'s secrets `subs` (its VM is gone); a later boot's registration under the same id is kept. */
export function forgetSubstitutions(vmId: string, subs: Substitution[]): void {
  if (substitutions.get(vmId) === subs) substitutions.delete(vmId);
}

/**
 * Whether the VM's policy lets it reach `name:port` through the proxy: its
 * rules in order, first match wins, with domain rules matched by name, `*`
 * by port, and CIDR rules skipped (the host resolves the name itself, so the
 * guest's address is not what is connected to); the default allows (a
 * bound host is a public service). `--no-network` allows nothing.
 */
export function nameAllowed(policy: NetworkPolicy, name: string, port: number): boolean {
  if (policy.mode === "none") return false;
  const targets = parseRules(policy.rules);
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    if (t.port !== undefined && t.port !== port) continue;
    if (t.kind === "any" || (t.kind === "domain" && domainMatches(t, name))) return policy.rules[i]!.action === "allow";
  }
  return true;
}

/** Parse `AEGIS_EGRESS_CONNECT` (test-only). */
export function connectOverrides(raw: string | undefined): Map<string, { host: string; port: number }> {
  const out = new Map<string, { host: string; port: number }>();
  for (const item of (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z0-9.-]+)(?::(\d+))?=([\d.]+):(\d+)$/i.exec(item);
    if (!m) throw new Error(`AEGIS_EGRESS_CONNECT item "${item}" is not NAME[:PORT]=IP:PORT`);
    out.set(`${m[1]!.toLowerCase()}:${m[2] ?? 443}`, { host: m[3]!, port: Number(m[4]) });
  }
  return out;
}

let upstreamCa: string[] | undefined;

/** The CAs upstream certificates are verified against: the host's system bundle (else Bun's roots), plus the test-only extra file. */
function upstreamTrust(): string[] {
  if (upstreamCa) return upstreamCa;
  const system = GUEST_BUNDLE_PATHS.find((p) => existsSync(p));
  const cas = system ? [readFileSync(system, "utf8")] : [...rootCertificates];
  const extra = process.env.AEGIS_EGRESS_EXTRA_CA;
  if (extra) cas.push(readFileSync(extra, "utf8"));
  upstreamCa = cas;
  return cas;
}

/** Request headers for upstream: substituted, without hop-by-hop ones (and those `Connection` names). */
function upstreamHeaders(raw: string[], host: BoundHost, subs: Substitution[]): Record<string, string> {
  const replaced = substituteRawHeaders(raw, host, subs);
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === "connection") for (const t of raw[i + 1]!.split(",")) named.add(t.trim().toLowerCase());
  const out: Record<string, string> = {};
  for (let i = 0; i < replaced.length; i += 2) {
    const k = replaced[i]!.toLowerCase();
    if (HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = out[k] === undefined ? replaced[i + 1]! : `${out[k]}${k === "cookie" ? "; " : ", "}${replaced[i + 1]}`;
  }
  out.host = host.port === 443 ? host.name : `${host.name}:${host.port}`;
  return out;
}

/** One VM's proxy: a TLS listener per bound port on the host end of its veth. */
export class EgressProxy {
  private constructor(
    private readonly servers: Server[],
    private readonly sockets: Set<TLSSocket>,
    /** Bound port -> the port the proxy listens on for it. */
    readonly listenPorts: Map<number, number>,
  ) {}

  /** Start listening on `listenHost` for the hosts bound for VM `vmId`. */
  static async start(opts: { vmId: string; listenHost: string; hosts: BoundHost[]; ca: EgressCa; policy: NetworkPolicy; log: (msg: string, fields?: Record<string, unknown>) => void }): Promise<EgressProxy> {
    const overrides = connectOverrides(process.env.AEGIS_EGRESS_CONNECT);
    const servers: Server[] = [];
    const sockets = new Set<TLSSocket>();
    const listenPorts = new Map<number, number>();
    try {
      for (const port of new Set(opts.hosts.map((h) => h.port))) {
        const names = new Set(opts.hosts.filter((h) => h.port === port).map((h) => h.name));
        // TLS and HTTP are two servers: Bun's node:https ignores SNICallback, node:tls honours it.
        const http = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
          const name = ((req.socket as { servername?: string }).servername ?? "").toLowerCase();
          EgressProxy.forward(req, res, { name, port }, substitutions.get(opts.vmId) ?? [], overrides, opts.log, opts.vmId);
        });
        http.setTimeout(IDLE_MS);
        const server = createTlsServer(
          {
            SNICallback: (servername, cb) => {
              const name = servername.toLowerCase();
              if (!names.has(name)) return cb(new Error(`${name}:${port} is not a host this VM's secrets are bound to`), undefined);
              if (!nameAllowed(opts.policy, name, port)) return cb(new Error(`${name}:${port} is refused by the VM's network policy`), undefined);
              try {
                cb(null, opts.ca.contextFor(name));
              } catch (err) {
                cb(err as Error, undefined);
              }
            },
          },
          (socket) => {
            sockets.add(socket);
            socket.on("close", () => sockets.delete(socket));
            http.emit("connection", socket);
          },
        );
        server.maxConnections = MAX_CONNECTIONS;
        server.on("tlsClientError", () => {}); // a refused handshake: the guest sees it fail; nothing to keep
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: opts.listenHost, port: 0, exclusive: true }, () => resolve());
        });
        servers.push(server);
        listenPorts.set(port, (server.address() as { port: number }).port);
      }
    } catch (err) {
      for (const s of servers) s.close();
      throw err;
    }
    return new EgressProxy(servers, sockets, listenPorts);
  }

  private static forward(req: IncomingMessage, res: ServerResponse, host: BoundHost, subs: Substitution[], overrides: Map<string, { host: string; port: number }>, log: (msg: string, fields?: Record<string, unknown>) => void, vmId: string): void {
    const to = overrides.get(`${host.name}:${host.port}`) ?? { host: host.name, port: host.port };
    const up = httpsRequest(
      { host: to.host, port: to.port, servername: host.name, method: req.method, path: req.url, headers: upstreamHeaders(req.rawHeaders, host, subs), ca: upstreamTrust() },
      (upRes) => {
        const headers: string[] = [];
        for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
          if (HOP_BY_HOP.has(upRes.rawHeaders[i]!.toLowerCase())) continue;
          headers.push(upRes.rawHeaders[i]!, upRes.rawHeaders[i + 1]!);
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers);
        upRes.pipe(res);
        upRes.on("error", () => res.destroy());
      },
    );
    up.on("error", (err) => {
      log("egress proxy: upstream request failed", { vm: vmId, host: `${host.name}:${host.port}`, error: err.message });
      if (res.headersSent) return res.destroy();
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`aegis egress proxy: cannot reach ${host.name}:${host.port}: ${err.message}\n`);
    });
    req.pipe(up);
    req.on("error", () => up.destroy());
    res.on("close", () => up.destroy());
  }

  /** Stop listening and cut open connections. */
  close(): void {
    for (const s of this.servers) s.close();
    for (const c of this.sockets) c.destroy();
  }
}

/** Name of the set holding the addresses the guest was told for bound host `k`. */
export function egressSet(chain: string, k: number, family: 4 | 6): string {
  return domainSet(chain, EGRESS_SET_BASE + k, family);
}

/** The nat chain of slot `slot`'s egress DNAT. */
function egressChain(chain: string): string {
  return `${chain}_eg`;
}

/** nft statements that route VM `chain`'s TLS to its bound hosts into the proxy (`listen`: bound port -> proxy port on `hostIp`). Pure. */
export function egressRules(chain: string, iface: string, hostIp: string, hosts: BoundHost[], listen: Map<number, number>): string {
  const c = egressChain(chain);
  const out = [`add chain ${TABLE} ${c}`];
  hosts.forEach((h, k) => {
    out.push(`add set ${TABLE} ${egressSet(chain, k, 4)} { type ipv4_addr; flags timeout; }`);
    out.push(`add set ${TABLE} ${egressSet(chain, k, 6)} { type ipv6_addr; flags timeout; }`);
    out.push(`add rule ${TABLE} ${c} ip daddr @${egressSet(chain, k, 4)} tcp dport ${h.port} dnat ip to ${hostIp}:${listen.get(h.port)}`);
  });
  for (const l of new Set(listen.values())) out.push(`insert rule ${TABLE} ${chain}_in ip daddr ${hostIp} tcp dport ${l} accept`);
  out.push(`add element ${TABLE} vm_egress { "${iface}" : jump ${c} }`);
  return `${out.join("\n")}\n`;
}

let baseReady: Promise<void> | undefined;

/** The shared prerouting chain and map (once per table; an older table has neither). */
export function ensureEgressBase(): Promise<void> {
  baseReady ??= (async () => {
    try {
      await runNft("", ["list", "chain", ...TABLE.split(" "), "egress_pre"]);
    } catch {
      await runNft(
        [
          `add chain ${TABLE} egress_pre { type nat hook prerouting priority -110; policy accept; }`,
          `add map ${TABLE} vm_egress { type ifname : verdict; }`,
          `add rule ${TABLE} egress_pre iifname vmap @vm_egress`,
          "",
        ].join("\n"),
      );
    }
  })();
  baseReady.catch(() => (baseReady = undefined));
  return baseReady;
}

/** Remove slot chain `chain`'s egress entries if present (before its sets and chains go: the DNAT chain references them). */
export async function removeEgress(chain: string, iface: string): Promise<void> {
  const lines: string[] = [];
  const has = async (args: string[]) => runNft("", args).then(() => true, () => false);
  if (await has(["get", "element", ...TABLE.split(" "), "vm_egress", `{ "${iface}" }`])) lines.push(`delete element ${TABLE} vm_egress { "${iface}" }`);
  if (await has(["list", "chain", ...TABLE.split(" "), egressChain(chain)])) lines.push(`flush chain ${TABLE} ${egressChain(chain)}`, `delete chain ${TABLE} ${egressChain(chain)}`);
  if (lines.length > 0) await runNft(`${lines.join("\n")}\n`);
}
