/**
 * @module guest/harness/net-config
 * The guest's eth0 on a pod network (host: vmm/network/pod.ts; the word
 * `aegis.podnet=` on the kernel command line, api/schema/pod-network.ts):
 * the pod's IPv4 address and prefix, its MTU, its routes (on-link ones
 * first, so a gateway outside the subnet, as Calico's 169.254.1.1, is
 * reachable when the routes through it are added), then the default route,
 * and the pod's resolv.conf. With inet-ioctl.ts, like the slirp network's
 * configureNetwork: ioctls on one socket, no fork. The virtio-net
 * MAC is the CNI interface's already (QEMU's `mac=`), so the host side's
 * neighbours see one machine.
 */
import { prefixNetmask, resolvConfText, type PodNetConfig, type PodRoute } from "../../src/api/schema/pod-network.ts";
import { InetConfig, RTF_GATEWAY, RTF_HOST, RTF_UP, rtentry } from "./inet-ioctl.ts";

/** The `struct rtentry` of `route` on `dev` (NUL-terminated; referenced until the ioctl returns). */
function podRtentry(route: PodRoute, dev: Buffer): Buffer {
  const flags = RTF_UP | (route.gateway ? RTF_GATEWAY : 0) | (route.prefix === 32 ? RTF_HOST : 0);
  return rtentry(route.dst, prefixNetmask(route.prefix), flags, route.gateway, dev);
}

/** The routes to add, in order: on-link ones, then via gateways, then the default route. */
export function routeOrder(cfg: PodNetConfig): PodRoute[] {
  const onLink = cfg.routes.filter((r) => !r.gateway);
  const via = cfg.routes.filter((r) => r.gateway);
  return [...onLink, ...via, ...(cfg.gateway ? [{ dst: "0.0.0.0", prefix: 0, gateway: cfg.gateway }] : [])];
}

/** Configure `lo` and `iface` (eth0) for the pod network `cfg`. */
export function configurePodNetwork(cfg: PodNetConfig, iface = "eth0"): void {
  const inet = new InetConfig();
  try {
    inet.up("lo");
    inet.mtu(iface, cfg.mtu);
    inet.address(iface, cfg.address, prefixNetmask(cfg.prefix), `/${cfg.prefix}`);
    inet.up(iface);
    const dev = Buffer.from(`${iface}\0`, "latin1");
    for (const r of routeOrder(cfg)) inet.route(podRtentry(r, dev), `route ${r.dst}/${r.prefix}${r.gateway ? ` via ${r.gateway}` : ""} dev ${iface}`);
  } finally {
    inet.close();
  }
}

/** The guest's /etc/resolv.conf on a pod network. */
export function podResolvConf(cfg: PodNetConfig): string {
  return resolvConfText(cfg.dns);
}
