import { describe, expect, it } from "bun:test";
import { decodePodNet, encodePodNet, MAX_PODNET_WORD, prefixNetmask, resolvConfText, type PodNetConfig } from "../../../../src/api/schema/pod-network.ts";
import { findPodInterface, netnsPathProblem, podDns, redirectScript, TAP } from "../../../../src/vmm/network/pod.ts";
import { routeOrder } from "../../../../guest/harness/net-config.ts";
import { buildQemuArgs, kernelCmdline } from "../../../../src/vmm/qemu-args.ts";

const lo = { ifname: "lo", address: "00:00:00:00:00:00", mtu: 65536, link_type: "loopback", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }] };
const eth0 = { ifname: "eth0", address: "AA:BB:CC:00:11:22", mtu: 1450, link_type: "ether", addr_info: [{ family: "inet", local: "10.88.0.7", prefixlen: 16, scope: "global" }, { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" }] };

describe("findPodInterface", () => {
  it("takes the interface with the pod's IPv4 address, its MAC, MTU, default gateway and non-kernel routes", () => {
    const routes = [
      { dst: "default", gateway: "10.88.0.1", dev: "eth0" },
      { dst: "10.88.0.0/16", dev: "eth0", protocol: "kernel" },
      { dst: "169.254.1.1", dev: "eth0" },
      { dst: "10.96.0.0/12", gateway: "10.88.0.1", dev: "eth0" },
      { dst: "192.168.0.0/24", dev: "other0" },
    ];
    expect(findPodInterface([lo, eth0], routes, "/run/netns/x")).toEqual({
      iface: "eth0",
      mac: "aa:bb:cc:00:11:22",
      mtu: 1450,
      address: "10.88.0.7",
      prefix: 16,
      gateway: "10.88.0.1",
      routes: [{ dst: "169.254.1.1", prefix: 32 }, { dst: "10.96.0.0", prefix: 12, gateway: "10.88.0.1" }],
    });
  });

  it("prefers eth0 among several, and says why when there is none or the choice is ambiguous", () => {
    const net1 = { ...eth0, ifname: "net1", address: "aa:bb:cc:00:11:33" };
    expect(findPodInterface([lo, net1, eth0], [], "/ns").iface).toBe("eth0");
    expect(() => findPodInterface([lo], [], "/run/netns/empty")).toThrow("/run/netns/empty has no interface with an IPv4 address");
    expect(() => findPodInterface([lo, net1, { ...net1, ifname: "net2" }], [], "/ns")).toThrow("ambiguous");
    expect(() => findPodInterface([{ ...eth0, address: undefined }], [], "/ns")).toThrow("no Ethernet MAC");
  });

  it("ignores the tap it made itself (adoption re-reads the namespace)", () => {
    const tap = { ...eth0, ifname: TAP, addr_info: [{ family: "inet", local: "10.1.1.1", prefixlen: 24, scope: "global" }] };
    expect(findPodInterface([lo, tap, eth0], [], "/ns").iface).toBe("eth0");
  });
});

describe("podDns", () => {
  it("keeps up to 3 non-loopback IPv4 nameservers, search and options; drops comments and junk", () => {
    const text = "# generated\nnameserver 127.0.0.53\nnameserver 10.96.0.10\nnameserver fd00::1\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nnameserver 9.9.9.9\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 bad$opt\n";
    expect(podDns(text)).toEqual({ nameservers: ["10.96.0.10", "1.1.1.1", "8.8.8.8"], search: ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"], options: ["ndots:5"] });
    expect(podDns("")).toEqual({ nameservers: [], search: [], options: [] });
  });
});

describe("redirectScript", () => {
  it("redirects the CNI interface to the tap and back, each from an ingress qdisc", () => {
    expect(redirectScript("eth0").trim().split("\n")).toEqual([
      "qdisc add dev eth0 handle ffff: ingress",
      `filter add dev eth0 parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev ${TAP}`,
      `qdisc add dev ${TAP} handle ffff: ingress`,
      `filter add dev ${TAP} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev eth0`,
    ]);
  });
});

describe("netnsPathProblem", () => {
  it("refuses relative paths, missing files and files that are not namespaces", () => {
    expect(netnsPathProblem("run/netns/x")).toContain("is not an absolute path");
    if (process.getuid?.() !== 0) return; // the other checks come after the root check
    expect(netnsPathProblem("/run/netns/definitely-not-here")).toContain("does not exist");
    expect(netnsPathProblem("/tmp")).toContain("is not a namespace file");
    expect(netnsPathProblem("/proc/self/ns/net")).toBeUndefined();
  });
});

const cfg: PodNetConfig = { address: "10.88.0.7", prefix: 16, mtu: 1450, gateway: "10.88.0.1", routes: [{ dst: "10.96.0.0", prefix: 12, gateway: "10.88.0.1" }, { dst: "169.254.1.1", prefix: 32 }], dns: { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"] } };

describe("the aegis.podnet word", () => {
  it("round-trips, is base64url and bounded; a bad one is refused with the reason", () => {
    const word = encodePodNet(cfg);
    expect(word).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePodNet(word)).toEqual(cfg);
    const bad = Buffer.from(JSON.stringify({ ...cfg, address: "10.88.0.300" })).toString("base64url");
    expect(() => decodePodNet(bad)).toThrow("aegis.podnet is not a valid pod network configuration");
    expect(() => decodePodNet("A".repeat(MAX_PODNET_WORD + 1))).toThrow("more than");
    expect(() => encodePodNet({ ...cfg, routes: Array.from({ length: 17 }, () => cfg.routes[0]!) })).toThrow();
  });

  it("gives netmasks and resolv.conf text", () => {
    expect([0, 8, 12, 24, 32].map(prefixNetmask)).toEqual(["0.0.0.0", "255.0.0.0", "255.240.0.0", "255.255.255.0", "255.255.255.255"]);
    expect(resolvConfText(cfg.dns)).toBe("nameserver 10.96.0.10\nsearch svc.cluster.local\noptions ndots:5\n");
    expect(resolvConfText({ nameservers: [], search: [], options: [] })).toBe("");
  });

  it("orders the guest's routes on-link first, then via gateways, then the default route", () => {
    expect(routeOrder(cfg)).toEqual([{ dst: "169.254.1.1", prefix: 32 }, { dst: "10.96.0.0", prefix: 12, gateway: "10.88.0.1" }, { dst: "0.0.0.0", prefix: 0, gateway: "10.88.0.1" }]);
  });
});

describe("QEMU arguments of a pod network VM", () => {
  const input = {
    arch: "x86_64" as const, accel: "tcg" as const, memoryMb: 512, vcpus: 1, kernel: "/k", initrd: "/i", toolsDisk: "/t", rootfs: "/r", ports: [],
    hostname: "pod-1", serialLog: "/s", controlSocket: "/c", qmpSocket: "/q",
    podNet: { tap: TAP, mac: "aa:bb:cc:00:11:22", word: encodePodNet(cfg) },
  };

  it("uses the tap with the CNI interface's MAC and no slirp, and puts the word on the kernel command line", () => {
    const a = buildQemuArgs(input);
    expect(a.join(" ")).toContain(`-netdev tap,id=n0,ifname=${TAP},script=no,downscript=no -device virtio-net-device,netdev=n0,mac=aa:bb:cc:00:11:22`);
    expect(a.join(" ")).not.toContain("user,id=n0");
    expect(kernelCmdline(input)).toContain(` aegis.podnet=${input.podNet.word}`);
  });

  it("refuses port forwards and malformed names", () => {
    expect(() => buildQemuArgs({ ...input, ports: [{ hostPort: 1, guestPort: 2 }] })).toThrow("port forwards need QEMU user networking");
    expect(() => buildQemuArgs({ ...input, podNet: { ...input.podNet, tap: "tap,x" } })).toThrow("not a valid interface name");
    expect(() => buildQemuArgs({ ...input, podNet: { ...input.podNet, mac: "AA:BB:CC:00:11:22" } })).toThrow("MAC address");
    expect(() => kernelCmdline({ ...input, podNet: { ...input.podNet, word: "a b" } })).toThrow("base64url");
  });
});
