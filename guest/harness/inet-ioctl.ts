/**
 * @module guest/harness/inet-ioctl
 * IPv4 interface and route set-up with ioctls on one AF_INET socket, no fork
 * (each fork costs 10-20 ms under TCG): what `ip link set up`, `ip addr add`
 * and `ip route add` would do. Used by libc.ts's configureNetwork (the slirp
 * network) and net-config.ts (a pod network).
 */
import { ptr } from "bun:ffi";
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
export const RTF_UP = 0x1;
export const RTF_GATEWAY = 0x2;
export const RTF_HOST = 0x4;

/** Write a `struct sockaddr_in` for `ip` at `off`. */
export function sockaddrIn(buf: Buffer, off: number, ip: string): void {
  buf.writeUInt16LE(AF_INET, off);
  const parts = ip.split(".").map(Number);
  for (let i = 0; i < 4; i++) buf[off + 4 + i] = parts[i]!;
}

/** A `struct ifreq` (char ifr_name[16] + a 24-byte union: 40 bytes on 64-bit) naming `iface`. */
function ifreq(iface: string): Buffer {
  const b = Buffer.alloc(40);
  b.write(iface, 0, 15, "latin1");
  return b;
}

/**
 * A `struct rtentry` (linux/route.h, LP64: dst@8, gateway@24, genmask@40,
 * flags@56 u16, rt_dev@88 char*; 120 bytes). `dev`, when given
 * (NUL-terminated), must stay referenced until the ioctl returns.
 */
export function rtentry(dst: string, genmask: string, flags: number, gateway?: string, dev?: Buffer): Buffer {
  const rt = Buffer.alloc(120);
  sockaddrIn(rt, 8, dst);
  if (gateway) sockaddrIn(rt, 24, gateway);
  sockaddrIn(rt, 40, genmask);
  rt.writeUInt16LE(flags, 56);
  if (dev) rt.writeBigUInt64LE(BigInt(ptr(dev)), 88);
  return rt;
}

/** One AF_INET socket to configure interfaces through; `close` it. Errors name what failed and errno. */
export class InetConfig {
  private readonly L = libc();
  private readonly fd: number;

  constructor() {
    this.fd = this.L.socket(AF_INET, SOCK_DGRAM, 0);
    if (this.fd < 0) throw new Error(`socket(AF_INET): ${errnoName()}`);
  }

  // Every buffer passed is owned by the caller's frame and outlives this synchronous ioctl.
  private ioctl(req: number, buf: Buffer, what: string): void {
    if (this.L.ioctl(this.fd, req, ptr(buf)) !== 0) throw new Error(`${what}: ${errnoName()}`);
  }

  up(iface: string): void {
    const r = ifreq(iface);
    this.ioctl(SIOCGIFFLAGS, r, `get flags of ${iface}`);
    r.writeInt16LE(r.readInt16LE(16) | IFF_UP, 16);
    this.ioctl(SIOCSIFFLAGS, r, `bring ${iface} up`);
  }

  mtu(iface: string, mtu: number): void {
    const r = ifreq(iface);
    r.writeInt32LE(mtu, 16);
    this.ioctl(SIOCSIFMTU, r, `set ${iface} mtu ${mtu}`);
  }

  /** Set `iface`'s address and netmask (`what` names the netmask in errors). */
  address(iface: string, address: string, netmask: string, what = netmask): void {
    const a = ifreq(iface);
    sockaddrIn(a, 16, address);
    this.ioctl(SIOCSIFADDR, a, `set ${iface} address ${address}`);
    const m = ifreq(iface);
    sockaddrIn(m, 16, netmask);
    this.ioctl(SIOCSIFNETMASK, m, `set ${iface} netmask ${what}`);
  }

  route(rt: Buffer, what: string): void {
    this.ioctl(SIOCADDRT, rt, `add ${what}`);
  }

  close(): void {
    this.L.close(this.fd);
  }
}

/**
 * Configure IPv4 the way `ip addr add`, `ip link set up` and `ip route add
 * default` would, with ioctls on one socket and no fork: `lo` up; when
 * `iface` is given, its address/netmask, up, and a default route via `gateway`.
 */
export function configureNetwork(net?: { iface: string; address: string; netmask: string; gateway: string }): void {
  const inet = new InetConfig();
  try {
    inet.up("lo");
    if (net) {
      inet.address(net.iface, net.address, net.netmask);
      inet.up(net.iface);
      inet.route(rtentry("0.0.0.0", "0.0.0.0", RTF_UP | RTF_GATEWAY, net.gateway), `default route via ${net.gateway}`);
    }
  } finally {
    inet.close();
  }
}
