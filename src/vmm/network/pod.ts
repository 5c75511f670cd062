/**
 * @module vmm/network/pod
 * The pod network mode (`netns_path`, issue 18 item 3): the VM's network is
 * a network namespace someone else prepared (CNI, through containerd's CRI
 * plugin, or any caller), the way Kata Containers' `tcfilter` model does it:
 *
 * - QEMU runs inside that namespace (`nsenter --net=PATH`, the same pid).
 * - A tap device {@link TAP} is created there, and tc joins it to the CNI
 *   interface (the one holding the pod's IPv4 address, usually eth0) both
 *   ways: an ingress qdisc on each and a u32 match-all filter with
 *   `action mirred egress redirect dev <other>`. Every frame the pod's veth
 *   receives goes to the guest, every frame of the guest leaves by the veth;
 *   the namespace's own stack sees none of it (the addresses stay on the
 *   veth: CNI owns them and deletes them with the namespace).
 * - QEMU's virtio-net has the CNI interface's MAC, and the guest's eth0 gets
 *   the pod's address, prefix, MTU, gateway and routes, read here from the
 *   namespace (`ip -j addr`, `ip -j -4 route`), plus DNS: the namespace's
 *   `/etc/netns/<name>/resolv.conf` for a named one (`ip netns exec`'s
 *   convention), else the host's /etc/resolv.conf (what containerd gives a
 *   pod with no DNS config). Loopback nameservers are dropped: the guest
 *   cannot reach the host's 127.0.0.53. It travels to the guest on the
 *   kernel command line (api/schema/pod-network.ts).
 *
 * What does not apply: egress policy (`--allow`/`--deny`/`--no-network`:
 * the pod's network policy is CNI's business), slirp port forwards
 * (`expose`, the router): a server in the guest is reached at the pod IP
 * instead. The instance API refuses those combinations. IPv6 is not
 * carried. Only one VM per namespace (the tap name is fixed; a second boot
 * finds it busy).
 *
 * Teardown removes the tap (its ingress qdisc goes with it) and the CNI
 * interface's ingress qdisc (its filter goes with it), never the namespace.
 * Live restore ({@link PodNetwork.adopt}) only checks that the namespace,
 * the tap and the redirect are still there: everything lives in the kernel.
 *
 * Needs root, `nsenter` (util-linux), `ip` and `tc` (iproute2) and the host
 * kernel's tun, sch_ingress, cls_u32 and act_mirred (Debian's kernel has
 * them as modules, loaded on demand).
 */
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { basename, dirname, isAbsolute } from "node:path";
import { encodePodNet, type PodNetConfig, type PodRoute } from "../../api/schema/pod-network.ts";

/** The tap device made in the pod's namespace. */
export const TAP = "tap0_aegis";

const NSFS_MAGIC = 0x6e736673;

function env() {
  return { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
}

/** Why `path` cannot be a VM's pod network namespace, or undefined when it can (existence, nsfs, root, tools). */
export function netnsPathProblem(path: string): string | undefined {
  if (!isAbsolute(path)) return `netns_path ${JSON.stringify(path)} is not an absolute path`;
  if (process.platform !== "linux") return "netns_path needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "netns_path needs aegisd to run as root (it creates a tap device and tc filters in the namespace)";
  for (const tool of ["nsenter", "ip", "tc"]) if (!Bun.which(tool)) return `netns_path needs ${tool} on the host (apt-get install util-linux iproute2)`;
  if (!existsSync(path)) return `netns_path ${path} does not exist`;
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (err) {
    return `netns_path ${path} cannot be inspected: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  if (type !== NSFS_MAGIC) return `netns_path ${path} is not a namespace file (filesystem type 0x${type.toString(16)}, not nsfs)`;
  return undefined;
}

/** Run `argv` inside the namespace at `netns`; resolves with stdout, throws with stderr. */
async function inNetns(netns: string, argv: string[], stdin?: string): Promise<string> {
  const proc = Bun.spawn(["nsenter", `--net=${netns}`, ...argv], { stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe", env: env() });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} in network namespace ${netns} failed (exit ${code}): ${err.trim()}`);
  return out;
}

/** One entry of `ip -j addr show`. */
interface IpLink {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  link_type?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

/** One entry of `ip -j -4 route show`. */
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

/** The CNI interface of a namespace and what the guest takes from it. */
export interface PodInterface {
  iface: string;
  mac: string;
  mtu: number;
  address: string;
  prefix: number;
  gateway?: string;
  routes: PodRoute[];
}

/**
 * Find the CNI interface in `ip -j addr` / `ip -j -4 route` output (pure):
 * the one non-loopback interface with a global IPv4 address (eth0 when
 * several have one), its first such address, its default gateway and its
 * other routes (the kernel's own subnet route excepted: the guest's kernel
 * makes it from the address).
 * @throws Error naming what is missing, for a namespace CNI has not set up
 */
export function findPodInterface(links: IpLink[], routes: IpRoute[], netns: string): PodInterface {
  const withV4 = links.filter((l) => l.ifname !== "lo" && l.ifname !== TAP && l.link_type !== "loopback" && (l.addr_info ?? []).some((a) => a.family === "inet" && a.scope !== "host"));
  const names = withV4.map((l) => l.ifname);
  if (withV4.length === 0) throw new Error(`network namespace ${netns} has no interface with an IPv4 address (interfaces: ${links.map((l) => l.ifname).join(", ") || "none"})\nhint: run the CNI plugins (ADD) on it before starting the VM`);
  const link = withV4.length === 1 ? withV4[0]! : withV4.find((l) => l.ifname === "eth0");
  if (!link) throw new Error(`network namespace ${netns} has several interfaces with IPv4 addresses (${names.join(", ")}) and none is eth0: which one is the pod's is ambiguous`);
  const addr = link.addr_info!.find((a) => a.family === "inet" && a.scope !== "host")!;
  if (!link.address || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(link.address)) throw new Error(`interface ${link.ifname} in ${netns} has no Ethernet MAC address (${String(link.address)})`);
  const mine = routes.filter((r) => r.dev === link.ifname);
  const def = mine.find((r) => r.dst === "default");
  const extra: PodRoute[] = [];
  for (const r of mine) {
    if (r.dst === "default" || r.protocol === "kernel") continue;
    const [dst, bits] = r.dst.split("/");
    extra.push({ dst: dst!, prefix: bits === undefined ? 32 : Number(bits), ...(r.gateway ? { gateway: r.gateway } : {}) });
  }
  return { iface: link.ifname, mac: link.address.toLowerCase(), mtu: link.mtu ?? 1500, address: addr.local!, prefix: addr.prefixlen ?? 32, ...(def?.gateway ? { gateway: def.gateway } : {}), routes: extra };
}

/** Parse resolv.conf text into the guest's DNS (loopback nameservers dropped, bounded as the schema is). */
export function podDns(text: string): PodNetConfig["dns"] {
  const dns: PodNetConfig["dns"] = { nameservers: [], search: [], options: [] };
  for (const raw of text.split("\n")) {
    const [key, ...rest] = raw.replace(/[#;].*/, "").trim().split(/\s+/);
    if (key === "nameserver" && rest[0] && /^\d+\.\d+\.\d+\.\d+$/.test(rest[0]) && !rest[0].startsWith("127.") && dns.nameservers.length < 3) dns.nameservers.push(rest[0]);
    else if (key === "search" || key === "domain") dns.search = rest.filter((d) => /^[A-Za-z0-9._-]{1,253}$/.test(d)).slice(0, 6);
    else if (key === "options") dns.options = rest.filter((o) => /^[A-Za-z0-9_:.-]{1,64}$/.test(o)).slice(0, 8);
  }
  return dns;
}

/** The resolv.conf the pod gets: `/etc/netns/<name>/resolv.conf` for a named namespace when present, else the host's. */
function podResolvConf(netns: string): string {
  const named = ["/run/netns", "/var/run/netns"].includes(dirname(netns)) ? `/etc/netns/${basename(netns)}/resolv.conf` : undefined;
  for (const path of [named, "/etc/resolv.conf"]) {
    if (!path) continue;
    try {
      return readFileSync(path, "utf8").slice(0, 16_384);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return "";
}

/** The tc script joining `iface` and the tap both ways (Kata's tcfilter model). */
export function redirectScript(iface: string): string {
  const both = [
    [iface, TAP],
    [TAP, iface],
  ];
  return `${both
    .flatMap(([from, to]) => [`qdisc add dev ${from} handle ffff: ingress`, `filter add dev ${from} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev ${to}`])
    .join("\n")}\n`;
}

/** Read the namespace's links and routes. */
async function readNamespace(netns: string): Promise<{ links: IpLink[]; routes: IpRoute[] }> {
  const links = JSON.parse(await inNetns(netns, ["ip", "-j", "addr", "show"])) as IpLink[];
  const routes = JSON.parse(await inNetns(netns, ["ip", "-j", "-4", "route", "show", "table", "main"])) as IpRoute[];
  return { links, routes };
}

/** Whether `dev`'s ingress has a mirred filter redirecting to `to` (tc prints "Egress Redirect to device TO"). */
async function redirectsTo(netns: string, dev: string, to: string): Promise<boolean> {
  const out = await inNetns(netns, ["tc", "filter", "show", "dev", dev, "ingress"]);
  return out.includes(`Redirect to device ${to})`);
}

/** Whether `dev`'s ingress is Aegis's: it redirects to the tap, or to a device that is gone (tc prints `*`: the tap of a VM that died). */
async function ownIngress(netns: string, dev: string): Promise<boolean> {
  return (await redirectsTo(netns, dev, TAP)) || (await redirectsTo(netns, dev, "*"));
}

/** The host side of a VM in pod network mode. */
export class PodNetwork {
  readonly mode = "pod";
  /** QEMU never binds port forwards in this mode (the guest answers on the pod IP). */
  readonly hostfwdAddress = "";
  private closed?: Promise<void>;

  private constructor(
    readonly netnsPath: string,
    private readonly pod: PodInterface,
    /** What the guest applies (undefined for an adopted VM, which is configured already). */
    readonly guest: PodNetConfig | undefined,
  ) {}

  /** Prefix of QEMU's argv: run it inside the pod's namespace. */
  get wrapper(): string[] {
    return ["nsenter", `--net=${this.netnsPath}`];
  }

  /** The tap QEMU attaches to. */
  get tap(): string {
    return TAP;
  }

  /** The MAC of the guest's virtio-net (the CNI interface's). */
  get mac(): string {
    return this.pod.mac;
  }

  /** The `aegis.podnet=` value for the guest's kernel command line. */
  get guestWord(): string | undefined {
    return this.guest ? encodePodNet(this.guest) : undefined;
  }

  /**
   * Create the tap in `netnsPath` and redirect the CNI interface to it.
   * A tap left by a VM that died without teardown (nothing attached: no
   * carrier) is removed first; one in use means another VM serves the pod.
   * @throws Error with the reason; anything made so far is removed again
   */
  static async setup(netnsPath: string): Promise<PodNetwork> {
    const why = netnsPathProblem(netnsPath);
    if (why) throw new Error(why);
    const { links, routes } = await readNamespace(netnsPath);
    const pod = findPodInterface(links, routes, netnsPath);
    const stale = links.find((l) => l.ifname === TAP);
    if (stale && !(stale.flags ?? []).includes("NO-CARRIER") && (stale.flags ?? []).includes("UP")) {
      throw new Error(`network namespace ${netnsPath} already has ${TAP} in use: another VM serves this pod\nhint: one VM per pod network namespace`);
    }
    const ingress = await qdiscPresent(netnsPath, pod.iface);
    if (ingress && !(await ownIngress(netnsPath, pod.iface))) {
      throw new Error(`interface ${pod.iface} in ${netnsPath} already has an ingress qdisc that is not Aegis's\nhint: the pod network mode needs ${pod.iface}'s ingress for its redirect to ${TAP}`);
    }
    // What a VM that died without teardown left (a detached tap, its redirect): replaced.
    if (stale) await inNetns(netnsPath, ["ip", "link", "del", TAP]);
    if (ingress) await inNetns(netnsPath, ["tc", "qdisc", "del", "dev", pod.iface, "ingress"]);
    const net = new PodNetwork(netnsPath, pod, { address: pod.address, prefix: pod.prefix, mtu: pod.mtu, ...(pod.gateway ? { gateway: pod.gateway } : {}), routes: pod.routes, dns: podDns(podResolvConf(netnsPath)) });
    encodePodNet(net.guest!); // too large for the command line: fail before anything is made
    try {
      await inNetns(netnsPath, ["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
      await inNetns(netnsPath, ["ip", "link", "set", TAP, "mtu", String(pod.mtu), "up"]);
      await inNetns(netnsPath, ["tc", "-batch", "-"], redirectScript(pod.iface));
    } catch (err) {
      await net.close();
      throw err;
    }
    return net;
  }

  /**
   * Take over the pod network of a VM a previous aegisd left running (live
   * restore): checks only, since the tap and filters are the kernel's.
   * @throws Error when the namespace, the tap or the redirect is gone; nothing is changed then
   */
  static async adopt(netnsPath: string): Promise<PodNetwork> {
    const why = netnsPathProblem(netnsPath);
    if (why) throw new Error(`the VM's pod network namespace is unusable now: ${why}`);
    const { links, routes } = await readNamespace(netnsPath);
    if (!links.some((l) => l.ifname === TAP)) throw new Error(`network namespace ${netnsPath} has no ${TAP} any more`);
    const pod = findPodInterface(links, routes, netnsPath);
    for (const [from, to] of [[pod.iface, TAP], [TAP, pod.iface]] as const) {
      if (!(await redirectsTo(netnsPath, from, to))) throw new Error(`the tc redirect from ${from} to ${to} in ${netnsPath} is gone`);
    }
    return new PodNetwork(netnsPath, pod, undefined);
  }

  /** Nothing to claim: the namespace is not ours. */
  get slot(): number | undefined {
    return undefined;
  }

  recordVm(_pid: number): void {}

  /** Port forwards need slirp, which this mode has not: refused (the instance API refuses them first). */
  async addForward(hostPort: number): Promise<void> {
    throw new Error(`port forward ${hostPort}: a VM on a pod network (netns_path) has no forwarded ports; reach its servers at the pod IP ${this.pod.address}`);
  }

  removeForward(_hostPort: number): void {}

  /** Remove the tap and the CNI interface's ingress qdisc (idempotent); the namespace stays. A namespace already gone took them with it. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (netnsPathProblem(this.netnsPath)) return; // removed by CNI/containerd already (or unmounted): nothing of ours is left in it
      const links = JSON.parse(await inNetns(this.netnsPath, ["ip", "-j", "link", "show"])) as IpLink[];
      // Whose the CNI interface's ingress is, decided before the tap goes (its redirect then names no device).
      const ours = links.some((l) => l.ifname === this.pod.iface) && (await qdiscPresent(this.netnsPath, this.pod.iface)) && (await ownIngress(this.netnsPath, this.pod.iface));
      if (links.some((l) => l.ifname === TAP)) await inNetns(this.netnsPath, ["ip", "link", "del", TAP]);
      if (ours) await inNetns(this.netnsPath, ["tc", "qdisc", "del", "dev", this.pod.iface, "ingress"]);
    })();
    return this.closed;
  }
}

/** Whether `dev` has an ingress qdisc. */
async function qdiscPresent(netns: string, dev: string): Promise<boolean> {
  const qdiscs = JSON.parse(await inNetns(netns, ["tc", "-j", "qdisc", "show", "dev", dev])) as { kind?: string }[];
  return qdiscs.some((q) => q.kind === "ingress");
}
