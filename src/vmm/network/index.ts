/**
 * @module vmm/network
 * A VM's network, host side: what the QEMU backend asks for before it spawns
 * QEMU and tears down when QEMU is gone. Two modes:
 *
 * - **isolated** (Linux, aegisd root, `ip` and `nft` present): a network
 *   namespace per VM (netns.ts) with the policy in the host's nftables
 *   (nft.ts), a DNS resolver per VM (dns.ts), QEMU spawned with
 *   `ip netns exec`, its port forwards bound on the namespace address and
 *   relayed from the host's 127.0.0.1 (relay.ts), `--allow host:PORT` as a
 *   socat on the namespace's 127.0.0.1:PORT relayed to the host's, and for
 *   a policy that allows a domain, the TLS server-name gate (sni-gate.ts).
 * - **reduced** (anything else): fail closed. QEMU's `restrict=on` refuses
 *   every guest connection (slirp answers RST, drops UDP); port forwards into
 *   the guest still work. The VM has no outbound network at all, and aegisd
 *   logs why once.
 *
 * Live restore ({@link VmNetwork.adopt}): the namespace, veth and nft rules
 * of a VM live in the kernel and outlive aegisd; its host side (DNS resolver,
 * relays, `--allow host:PORT` socat) does not, and a new aegisd rebuilds it
 * from the slot and policy recorded with the VM (daemon/registry/vms.ts).
 *
 * Secrets kept out of the guest: a VM given bound hosts (`egress`) also gets
 * the egress proxy (egress-proxy.ts) on the host end of its veth, the DNAT
 * that sends its TLS to those hosts there, and the resolver records their
 * addresses for it.
 *
 * A third mode lives apart, in pod.ts: a VM on a pod network (`netns_path`,
 * the containerd/CNI path) runs in a namespace it was given, on a tap, with
 * none of the above.
 *
 * `--no-network` VMs still get a namespace (so their port forwards work the
 * same way) with every packet refused, plus `restrict=on`.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { hostPorts, parseRules, type NetworkPolicy } from "../../api/network-policy.ts";
import { type DomainRule, VmResolver } from "./dns.ts";
import { createNetns, ensureTable, isolationSupport, killInNetns, type Netns, nsName, reclaimSlot, recordSlotVm, releaseSlot, removeNetns } from "./netns.ts";
import { domainSet, runNft, slotAddresses, vmRules } from "./nft.ts";
import { Relay } from "./relay.ts";
import { GATE_PORT, needsGate, SniGate } from "./sni-gate.ts";
import type { BoundHost } from "../../api/egress-secrets.ts";
import { EgressCa } from "./egress-ca.ts";
import { EGRESS_SET_BASE, EgressProxy, egressRules, egressSet, ensureEgressBase, removeEgress } from "./egress-proxy.ts";

/** The hosts a VM's substituted secrets are bound to (its values reach the proxy through registerSubstitutions). */
export interface VmEgress {
  vmId: string;
  hosts: BoundHost[];
}

const cas = new Map<string, EgressCa>();

/** The egress CA of `home` (made on first use, then kept for this process). */
export function egressCa(home: string): EgressCa {
  let ca = cas.get(home);
  if (!ca) cas.set(home, (ca = EgressCa.loadOrCreate(home)));
  return ca;
}

/** Where a network reports things worth a log line. */
export type NetLog = (msg: string, fields?: Record<string, unknown>) => void;

let reducedLogged = false;
/** Whether a VM with `policy` gets a TLS server-name gate. */
function wantsGate(policy: NetworkPolicy): boolean {
  return policy.mode !== "none" && needsGate(parseRules(policy.rules), policy.rules);
}

/** The host side of one VM's network. */
export class VmNetwork {
  private readonly relays = new Map<number, Relay>();
  private readonly extras: (Relay | Subprocess)[] = [];
  private resolver?: VmResolver;
  private gate?: SniGate;
  private proxy?: EgressProxy;
  private closed?: Promise<void>;

  private constructor(
    /** Prefix of QEMU's argv (`ip netns exec NAME`), empty in reduced mode. */
    readonly wrapper: string[],
    /** Address QEMU's `hostfwd` listeners bind to. */
    readonly hostfwdAddress: string,
    /** Whether QEMU gets `restrict=on`. */
    readonly restrict: boolean,
    private readonly ns: Netns | undefined,
    private readonly sets: string[],
    /** How the VM's network is enforced, for logs and `instance info`. */
    readonly mode: "isolated" | "reduced",
  ) {}

  /** Set up the network of a VM with `policy`; `runDir` holds its unix sockets. */
  static async setup(policy: NetworkPolicy, runDir: string, home: string, log: NetLog, egress?: VmEgress): Promise<VmNetwork> {
    parseRules(policy.rules); // a bad stored rule fails the boot here, with its message, before anything is created
    const why = isolationSupport();
    if (why) {
      if (!reducedLogged) log(`network isolation unavailable (${why}): VMs start with no outbound network (QEMU restrict=on); port forwards still work`);
      reducedLogged = true;
      return new VmNetwork([], "127.0.0.1", true, undefined, [], "reduced");
    }
    await ensureTable();
    const ns = await createNetns(home);
    const { net, domains } = VmNetwork.isolated(ns, policy);
    try {
      const gate = wantsGate(policy);
      await runNft(vmRules(ns.slot, policy, gate ? GATE_PORT : undefined));
      await net.startEgress(policy, home, log, domains, egress);
      await net.startHostSide(policy, domains, runDir, log, gate);
    } catch (err) {
      await net.close();
      throw err;
    }
    return net;
  }

  /** The egress proxy and its DNAT for `egress`'s hosts (none without hosts or network); adds their DNS rules to `domains`. */
  private async startEgress(policy: NetworkPolicy, home: string, log: NetLog, domains: DomainRule[], egress: VmEgress | undefined): Promise<void> {
    if (!egress || egress.hosts.length === 0 || policy.mode === "none" || !this.ns) return;
    await ensureEgressBase();
    const ns = this.ns;
    this.proxy = await EgressProxy.start({ vmId: egress.vmId, listenHost: ns.hostIp, hosts: egress.hosts, ca: egressCa(home), policy, log });
    egress.hosts.forEach((h, k) => {
      this.sets.push(egressSet(ns.chain, k, 4), egressSet(ns.chain, k, 6));
      domains.push({ index: EGRESS_SET_BASE + k, target: { kind: "domain", name: h.name, wildcard: false } });
    });
    await runNft(egressRules(ns.chain, ns.iface, ns.hostIp, egress.hosts, this.proxy.listenPorts));
  }

  /**
   * Take over the network of a VM a previous aegisd of `home` left running
   * (live restore): `slot` is the one recorded with the VM (undefined: it ran
   * in reduced mode, which has no host side to rebuild). Re-claims the slot
   * for this process and restarts what died with the old aegisd: the DNS
   * resolver and the `--allow host:PORT` relays (a leftover socat in the
   * namespace is killed first, it holds the port). The nft rules and domain
   * sets are the kernel's and still in place. The caller re-adds the port
   * forwards ({@link addForward}).
   * @throws Error when the namespace is gone or not this home's; nothing is changed then
   */
  static async adopt(slot: number | undefined, policy: NetworkPolicy, runDir: string, home: string, log: NetLog, egress?: VmEgress): Promise<VmNetwork> {
    parseRules(policy.rules);
    if (slot === undefined) return new VmNetwork([], "127.0.0.1", true, undefined, [], "reduced");
    const why = isolationSupport();
    if (why) throw new Error(`the VM runs in network namespace ${nsName(slot)}, but network isolation is unavailable now (${why})`);
    reclaimSlot(slot, home);
    const a = slotAddresses(slot);
    const { net, domains } = VmNetwork.isolated({ slot, name: nsName(slot), hostIp: a.host, nsIp: a.ns, iface: a.iface, chain: a.chain }, policy);
    try {
      await ensureTable();
      const killed = await killInNetns(slot, "socat");
      if (killed.length > 0) log("killed the previous aegisd's host-port relays in the VM's namespace", { netns: nsName(slot), pids: killed });
      if (egress && egress.hosts.length > 0) {
        // The old proxy died with its aegisd: drop its DNAT (it names the old listen ports) and start anew.
        await removeEgress(a.chain, a.iface);
        await net.startEgress(policy, home, log, domains, egress);
      }
      await net.startHostSide(policy, domains, runDir, log, wantsGate(policy));
    } catch (err) {
      await net.close();
      throw err;
    }
    return net;
  }

  /** The isolated network of namespace `ns` with `policy` (nothing started yet), and the policy's domain rules. */
  private static isolated(ns: Netns, policy: NetworkPolicy): { net: VmNetwork; domains: DomainRule[] } {
    const sets: string[] = [];
    const targets = policy.mode === "none" ? [] : parseRules(policy.rules);
    const domains: DomainRule[] = [];
    targets.forEach((t, index) => {
      if (t.kind !== "domain") return;
      domains.push({ index, target: t });
      sets.push(domainSet(ns.chain, index, 4), domainSet(ns.chain, index, 6));
    });
    return { net: new VmNetwork(["ip", "netns", "exec", ns.name], ns.nsIp, policy.mode === "none", ns, sets, "isolated"), domains };
  }

  /** Start the pieces living in aegisd: the DNS resolver, the server-name gate and the `--allow host:PORT` relays. */
  private async startHostSide(policy: NetworkPolicy, domains: DomainRule[], runDir: string, log: NetLog, gate: boolean): Promise<void> {
    if (policy.mode !== "none") this.resolver = await VmResolver.start(this.ns!.hostIp, this.ns!.chain, domains, log);
    if (gate) this.gate = await SniGate.start({ hostIp: this.ns!.hostIp, nsIp: this.ns!.nsIp, chain: this.ns!.chain, targets: parseRules(policy.rules), rules: policy.rules, log });
    for (const port of hostPorts(policy)) await this.allowHostPort(port, runDir);
  }

  /** The network slot (namespace `aegis-N`), undefined in reduced mode; recorded with the VM for live restore. */
  get slot(): number | undefined {
    return this.ns?.slot;
  }

  /** Name the VM's QEMU in the slot claim, so a later aegisd's reap leaves the namespace of a running VM alone. */
  recordVm(pid: number): void {
    if (this.ns) recordSlotVm(this.ns.slot, pid);
  }

  /** `--allow host:PORT`: the namespace's 127.0.0.1:PORT (the guest's 10.0.2.2:PORT) reaches the host's 127.0.0.1:PORT. */
  private async allowHostPort(port: number, runDir: string): Promise<void> {
    if (!Bun.which("socat")) throw new Error(`--allow host:${port} needs socat on the host\nhint: apt-get install socat`);
    const sock = join(runDir, `host-${port}.sock`);
    rmSync(sock, { force: true }); // a previous aegisd's (live restore): binding needs the path free
    this.extras.push(await Relay.start({ path: sock }, { host: "127.0.0.1", port }));
    const proc = spawn(["ip", "netns", "exec", this.ns!.name, "socat", `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sock}`], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    this.extras.push(proc);
  }

  /** Make the host's 127.0.0.1:`hostPort` reach QEMU's forward of it (a no-op in reduced mode, where QEMU binds it itself). */
  async addForward(hostPort: number): Promise<void> {
    if (!this.ns || this.relays.has(hostPort)) return;
    this.relays.set(hostPort, await Relay.start({ host: "127.0.0.1", port: hostPort }, { host: this.ns.nsIp, port: hostPort }));
  }

  /** Stop relaying `hostPort`. */
  removeForward(hostPort: number): void {
    this.relays.get(hostPort)?.close();
    this.relays.delete(hostPort);
  }

  /** Tear everything down (idempotent): relays, resolver, socat, nft entries, namespace, slot. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      for (const r of this.relays.values()) r.close();
      this.relays.clear();
      this.resolver?.close();
      this.gate?.close();
      this.proxy?.close();
      for (const e of this.extras) {
        if (e instanceof Relay) e.close();
        else {
          e.kill("SIGKILL");
          await e.exited;
        }
      }
      if (this.ns) {
        await removeNetns(this.ns.slot, this.sets);
        releaseSlot(this.ns.slot);
      }
    })();
    return this.closed;
  }
}

export { isolationSupport, reapStaleSlots } from "./netns.ts";
