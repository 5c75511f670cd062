/**
 * @module api/schema/pod-network
 * The guest side of the pod network mode (`netns_path`, vmm/network/pod.ts):
 * what the host read from the pod's network namespace and the guest applies
 * to its eth0 (the pod's IPv4 address and prefix, MTU, gateway, routes and
 * DNS). It reaches the guest on the kernel command line as one word,
 * `aegis.podnet=<base64url of this JSON>`: the guest needs it before the
 * control channel is up (the network is set up before `ready`, with no
 * fork), and none of it is secret (QEMU's argv is world-readable). The
 * encoded word is bounded ({@link MAX_PODNET_WORD}) so it fits the x86
 * kernel's 2048-byte command line with the rest. IPv4 only: IPv6 addresses
 * of the pod are not carried (the guest gets none).
 */
import { z } from "zod";

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A dotted-quad IPv4 address. */
export const Ipv4 = z.string().regex(IPV4_RE, "must be a dotted-quad IPv4 address");

/** One route besides the default one (`ip route` in the pod's namespace); no gateway: on-link. */
export const PodRoute = z.object({ dst: Ipv4, prefix: z.number().int().min(0).max(32), gateway: Ipv4.optional() }).strict();
export type PodRoute = z.infer<typeof PodRoute>;

/** What the guest's eth0 and resolv.conf become. */
export const PodNetConfig = z
  .object({
    address: Ipv4,
    prefix: z.number().int().min(1).max(32),
    mtu: z.number().int().min(576).max(65535),
    /** The default route's gateway; no default route when absent. */
    gateway: Ipv4.optional(),
    routes: z.array(PodRoute).max(16),
    /** resolv.conf of the pod: at most 3 nameservers (glibc uses no more), search domains, options. */
    dns: z
      .object({
        nameservers: z.array(Ipv4).max(3),
        search: z.array(z.string().regex(/^[A-Za-z0-9._-]{1,253}$/, "must be a domain name")).max(6),
        options: z.array(z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, "must be a resolv.conf option word")).max(8),
      })
      .strict(),
  })
  .strict();
export type PodNetConfig = z.infer<typeof PodNetConfig>;

// The kernel command line key lives in guest-wire.ts (the harness reads it before it loads zod).
import { PODNET_KEY } from "./guest-wire.ts";

export { PODNET_KEY };

/** Longest `aegis.podnet=` value accepted (characters). */
export const MAX_PODNET_WORD = 1200;

/** Encode `cfg` as the value of the `aegis.podnet=` word. */
export function encodePodNet(cfg: PodNetConfig): string {
  const word = Buffer.from(JSON.stringify(PodNetConfig.parse(cfg))).toString("base64url");
  if (word.length > MAX_PODNET_WORD) {
    throw new Error(`the pod network configuration is ${word.length} characters encoded, more than the ${MAX_PODNET_WORD} the kernel command line can carry (${cfg.routes.length} routes, ${cfg.dns.search.length} search domains)`);
  }
  return word;
}

/** Decode an `aegis.podnet=` value; throws with the reason when it is not a valid configuration. */
export function decodePodNet(word: string): PodNetConfig {
  if (word.length > MAX_PODNET_WORD) throw new Error(`${PODNET_KEY} is ${word.length} characters, more than ${MAX_PODNET_WORD}`);
  const parsed = PodNetConfig.safeParse(JSON.parse(Buffer.from(word, "base64url").toString("utf8")));
  if (!parsed.success) throw new Error(`${PODNET_KEY} is not a valid pod network configuration: ${parsed.error.message}`);
  return parsed.data;
}

/** The netmask of a prefix length, dotted (24 -> 255.255.255.0). */
export function prefixNetmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 0xff).join(".");
}

/** The resolv.conf text of `dns` (empty when it names nothing). */
export function resolvConfText(dns: PodNetConfig["dns"]): string {
  const lines = [...dns.nameservers.map((n) => `nameserver ${n}`)];
  if (dns.search.length > 0) lines.push(`search ${dns.search.join(" ")}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(" ")}`);
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}
