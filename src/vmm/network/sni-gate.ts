/**
 * @module vmm/network/sni-gate
 * Domain rules checked against the TLS server name too. A domain rule admits
 * the addresses the VM's DNS answers gave (dns.ts); on a shared address (a
 * CDN, a cloud load balancer) the guest could then speak TLS to any other
 * name served there. So a VM whose policy allows a domain gets this gate:
 * nft (nft.ts `vm<N>_pre`) diverts the TCP connections to port 443 that its
 * `allow DOMAIN` rule would accept (the same first-match walk as the filter,
 * so an earlier deny still refuses in the kernel) to this listener on the
 * host end of the VM's veth, port {@link GATE_PORT}. The gate
 * - recovers the destination the guest dialled with `SO_ORIGINAL_DST`
 *   (ffi/sockopt.ts: the kernel's conntrack lookup, O(1); reading
 *   /proc/net/nf_conntrack instead cost 35 ms per connection at 3000
 *   entries), and never connects anywhere else;
 * - reads the ClientHello (read-tls-client-hello: one TLS record, at most
 *   64 KiB) within {@link HELLO_TIMEOUT_MS};
 * - walks the VM's rules in order with the server name ({@link sniVerdict}):
 *   the first domain or `*` rule that covers the name and port 443 decides,
 *   none means the default (public, allowed: its address passed the filter);
 * - refuses (closes the connection) when the name is denied, absent, or the
 *   bytes are not TLS: on a gated connection only TLS that names its host
 *   passes. Otherwise it splices the guest to the dialled address, replaying
 *   the ClientHello; TLS is not terminated (egress-secrets does that, in its
 *   own module).
 *
 * Only port 443 is gated; other ports of a domain rule are checked by address
 * only. IPv4 only, like VM egress.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { domainMatches, type NetworkRule, type RuleTarget } from "../../api/network-policy.ts";
import { originalDestination } from "../../../ffi/sockopt.ts";

/** The gate's port on the host end of every VM's veth. */
export const GATE_PORT = 15443;

/** How long a guest may take to send its ClientHello. */
export const HELLO_TIMEOUT_MS = 5000;

/** Gated connections one VM may hold open at once (more are refused). */
const MAX_CONNECTIONS = 1024;

/** Refusals logged per VM (the guest chooses how many it causes). */
const MAX_LOGGED = 50;

/** Whether a VM with these rules gets a gate: it allows at least one domain on port 443. */
export function needsGate(targets: RuleTarget[], rules: NetworkRule[]): boolean {
  return targets.some((t, k) => t.kind === "domain" && rules[k]!.action === "allow" && (t.port === undefined || t.port === 443));
}

/**
 * The verdict of the VM's ordered rules for a TLS server name on port 443:
 * the first domain or `*` rule covering it decides; CIDR and host rules say
 * nothing about names; no match is the default, which allows public names.
 * No name (undefined) is refused. Pure.
 */
export function sniVerdict(targets: RuleTarget[], rules: NetworkRule[], name: string | undefined): "allow" | "deny" {
  if (name === undefined || name === "") return "deny";
  for (const [k, t] of targets.entries()) {
    if (t.kind !== "domain" && t.kind !== "any") continue;
    if (t.port !== undefined && t.port !== 443) continue;
    if (t.kind === "any" || domainMatches(t, name)) return rules[k]!.action;
  }
  return "allow";
}

/**
 * The ClientHello reader, loaded on first use. Imported statically (it is
 * CommonJS and requires node:tls and node:stream), it was evaluated in every
 * role of the one binary, and the guest harness then no longer became ready
 * within the boot watchdog under TCG (seen 2026-12-02).
 */
function tlsHello(): Promise<typeof import("read-tls-client-hello")> {
  return import("read-tls-client-hello");
}

/** A server name fit for a log line (the guest wrote it). */
function shown(name: string | undefined): string {
  return name === undefined ? "(none)" : JSON.stringify(name.slice(0, 253));
}

/** One VM's gate. */
export class SniGate {
  private readonly sockets = new Set<Socket>();
  private logged = 0;
  private constructor(private readonly server: Server) {}

  /**
   * Listen on `hostIp:GATE_PORT` for the VM whose namespace end is `nsIp`.
   * @throws Error naming the address when it cannot be bound
   */
  static async start(opts: { hostIp: string; nsIp: string; chain: string; targets: RuleTarget[]; rules: NetworkRule[]; log: (msg: string, fields?: Record<string, unknown>) => void }): Promise<SniGate> {
    let gate: SniGate | undefined;
    const server = createServer({ allowHalfOpen: true }, (client) => void gate?.handle(client, opts));
    gate = new SniGate(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => reject(new Error(`cannot start the TLS server-name gate on ${opts.hostIp}:${GATE_PORT}: ${err.code ?? err.message}`)));
      server.listen({ host: opts.hostIp, port: GATE_PORT, exclusive: true }, resolve);
    });
    return gate;
  }

  private refuse(client: Socket, opts: { chain: string; log: (msg: string, fields?: Record<string, unknown>) => void }, why: string, fields: Record<string, unknown>): void {
    // A reset, like the filter's refusals (`reject with tcp reset`): the guest's connect fails at once.
    client.resetAndDestroy();
    if (this.logged < MAX_LOGGED) opts.log(`sni gate: refused a connection (${why})`, { chain: opts.chain, ...fields });
    else if (this.logged === MAX_LOGGED) opts.log("sni gate: further refusals of this VM are not logged", { chain: opts.chain });
    this.logged++;
  }

  private async handle(client: Socket, opts: Parameters<typeof SniGate.start>[0]): Promise<void> {
    if (this.sockets.size >= MAX_CONNECTIONS) return this.refuse(client, opts, "too many open connections", {});
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => client.destroy());
    // Bun's node:net sockets carry their fd on `_handle` (checked on Bun 1.4.5); no fd, no destination: refused.
    const dst = originalDestination((client as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1);
    if (!dst || client.remoteAddress !== opts.nsIp) return this.refuse(client, opts, "its original destination is unknown", { from: `${client.remoteAddress}:${client.remotePort}` });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let name: string | undefined;
    try {
      const { getExtensionData, readTlsClientHello } = await tlsHello();
      const hello = await Promise.race([
        readTlsClientHello(client),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ClientHello within ${HELLO_TIMEOUT_MS} ms`)), HELLO_TIMEOUT_MS))),
      ]);
      name = getExtensionData(hello, "server_name")?.serverName;
    } catch (err) {
      return this.refuse(client, opts, `not TLS: ${(err as Error).message}`, { dst: `${dst.host}:${dst.port}` });
    } finally {
      clearTimeout(timer);
    }
    if (sniVerdict(opts.targets, opts.rules, name) === "deny") return this.refuse(client, opts, "server name not allowed", { sni: shown(name), dst: `${dst.host}:${dst.port}` });
    if (client.destroyed) return;
    // No Nagle on either side: a handshake is small writes back and forth (with it, each waited for a delayed ACK).
    client.setNoDelay(true);
    const upstream = createConnection({ host: dst.host, port: dst.port, allowHalfOpen: true, noDelay: true });
    this.sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("error", done);
      s.on("close", done);
    }
    // The ClientHello was put back into `client`: the pipe replays it first.
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stop listening and cut the gated connections. */
  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}
