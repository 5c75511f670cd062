/**
 * @module guest/harness/net-config
 * The guest's eth0 on a pod network (host: vmm/network/pod.ts; the word
 * `aegis.podnet=` on the kernel command line, api/schema/pod-network.ts):
 * the pod's IPv4 address and prefix, its MTU, its routes (on-link ones
 * first, so a gateway outside the subnet, as Calico's 169.254.1.1, is
 * reachable when the routes through it are added), then the default route,
 * and the pod's resolv.conf. Like libc.ts's configureNetwork, with ioctls on
 * one socket and no fork (each fork costs 10-20 ms under TCG). The virtio-net
 * MAC is the CNI interface's already (QEMU's `mac=`), so the host side's
 * neighbours see one machine.
 */
import { ptr } from "bun:ffi";
import { prefixNetmask, resolvConfText, type PodNetConfig, type PodRoute } from "../../src/api/schema/pod-network.ts";
import { errnoName, libc } from "./libc.ts";

const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCSIFADDR = 0x8916;
const SIOCSIFNETMASK = 0x891c;
const SIOCSIFMTU = 0x8922;
const SIOCADDRT = 0x890b;
const AF_INET = 2;
const SOCK_DGRAM = 2;
const IFF_UP = 0x1;
const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const RTF_HOST = 0x4;

/** Write a `struct sockaddr_in` for `ip` at `off`. */
function sockaddrIn(buf: Buffer, off: number, ip: string): void {
  buf.writeUInt16LE(AF_INET, off);
  const parts = ip.split(".").map(Number);
  for (let i = 0; i < 4; i++) buf[off + 4 + i] = parts[i]!;
}

/** A `struct ifreq` (40 bytes on 64-bit) naming `iface`. */
function ifreq(iface: string): Buffer {
  const b = Buffer.alloc(40);
  b.write(iface, 0, 15, "latin1");
  return b;
}

/**
 * A `struct rtentry` (linux/route.h, LP64: dst@8, gateway@24, genmask@40,
 * flags@56 u16, rt_dev@88 char*; 120 bytes) for `route` on `dev`. `dev`
 * (NUL-terminated) must stay referenced until the ioctl returns.
 */
function rtentry(route: PodRoute, dev: Buffer): Buffer {
  const rt = Buffer.alloc(120);
  sockaddrIn(rt, 8, route.dst);
  if (route.gateway) sockaddrIn(rt, 24, route.gateway);
  sockaddrIn(rt, 40, prefixNetmask(route.prefix));
  rt.writeUInt16LE(RTF_UP | (route.gateway ? RTF_GATEWAY : 0) | (route.prefix === 32 ? RTF_HOST : 0), 56);
  rt.writeBigUInt64LE(BigInt(ptr(dev)), 88);
  return rt;
}

/** The routes to add, in order: on-link ones, then via gateways, then the default route. */
export function routeOrder(cfg: PodNetConfig): PodRoute[] {
  const onLink = cfg.routes.filter((r) => !r.gateway);
  const via = cfg.routes.filter((r) => r.gateway);
  return [...onLink, ...via, ...(cfg.gateway ? [{ dst: "0.0.0.0", prefix: 0, gateway: cfg.gateway }] : [])];
}

/** Configure `lo` and `iface` (eth0) for the pod network `cfg`. */
export function configurePodNetwork(cfg: PodNetConfig, iface = "eth0"): void {
  const L = libc();
  const fd = L.socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) throw new Error(`socket(AF_INET): ${errnoName()}`);
  // Every buffer below is owned by this function and outlives its synchronous ioctl.
  const ioctl = (req: number, buf: Buffer, what: string): void => {
    if (L.ioctl(fd, req, ptr(buf)) !== 0) throw new Error(`${what}: ${errnoName()}`);
  };
  const up = (name: string): void => {
    const r = ifreq(name);
    ioctl(SIOCGIFFLAGS, r, `get flags of ${name}`);
    r.writeInt16LE(r.readInt16LE(16) | IFF_UP, 16);
    ioctl(SIOCSIFFLAGS, r, `bring ${name} up`);
  };
  try {
    up("lo");
    const mtu = ifreq(iface);
    mtu.writeInt32LE(cfg.mtu, 16);
    ioctl(SIOCSIFMTU, mtu, `set ${iface} mtu ${cfg.mtu}`);
    const a = ifreq(iface);
    sockaddrIn(a, 16, cfg.address);
    ioctl(SIOCSIFADDR, a, `set ${iface} address ${cfg.address}`);
    const m = ifreq(iface);
    sockaddrIn(m, 16, prefixNetmask(cfg.prefix));
    ioctl(SIOCSIFNETMASK, m, `set ${iface} netmask /${cfg.prefix}`);
    up(iface);
    const dev = Buffer.from(`${iface}\0`, "latin1");
    for (const r of routeOrder(cfg)) ioctl(SIOCADDRT, rtentry(r, dev), `add route ${r.dst}/${r.prefix}${r.gateway ? ` via ${r.gateway}` : ""} dev ${iface}`);
  } finally {
    L.close(fd);
  }
}

/** The guest's /etc/resolv.conf on a pod network. */
export function podResolvConf(cfg: PodNetConfig): string {
  return resolvConfText(cfg.dns);
}
