/**
 * The host side of the pod network mode (vmm/network/pod.ts) on real
 * namespaces, without a VM (root): the tap and the tc redirect both ways,
 * adoption's checks, recovery from what a VM that died without teardown
 * leaves (a detached tap; a redirect whose tap is gone), refusal of an
 * ingress qdisc that is not ours (left untouched), and a teardown that
 * leaves the namespace and CNI's interface as they were. The namespace
 * plays CNI's: a veth end `eth0` with an address and a default route.
 */
import { afterEach, beforeEach, expect, it } from "bun:test";
import { PodNetwork, TAP } from "../../src/vmm/network/pod.ts";

const ns = `aegis-podint-${process.pid}`;
const path = `/run/netns/${ns}`;
const peer = `podi${process.pid % 100000}`;

function sh(...argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}
const links = () => sh("ip", "-n", ns, "link");
const ingressOf = (dev: string) => sh("tc", "-n", ns, "filter", "show", "dev", dev, "ingress");
const hasIngress = () => sh("tc", "-n", ns, "qdisc", "show", "dev", "eth0").includes("ingress");

beforeEach(() => {
  sh("ip", "netns", "add", ns);
  sh("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns);
  sh("ip", "-n", ns, "addr", "add", "10.88.73.2/24", "dev", "eth0");
  sh("ip", "-n", ns, "link", "set", "eth0", "up");
  sh("ip", "-n", ns, "route", "add", "default", "via", "10.88.73.1");
});
afterEach(() => {
  Bun.spawnSync(["ip", "link", "del", peer]);
  Bun.spawnSync(["ip", "netns", "del", ns]);
});

it("makes the tap and the redirect both ways, adopts them, and tears down only its own", async () => {
  const net = await PodNetwork.setup(path);
  expect(net.guest).toMatchObject({ address: "10.88.73.2", prefix: 24, gateway: "10.88.73.1", routes: [] });
  expect(net.mac).toBe(JSON.parse(sh("ip", "-n", ns, "-j", "link", "show", "eth0"))[0].address);
  expect(net.wrapper).toEqual(["nsenter", `--net=${path}`]);
  expect(ingressOf("eth0")).toContain(`Redirect to device ${TAP})`);
  expect(ingressOf(TAP)).toContain("Redirect to device eth0)");
  await PodNetwork.adopt(path);
  await net.close();
  expect(links()).not.toContain(TAP);
  expect(hasIngress()).toBe(false);
  expect(sh("ip", "-n", ns, "-4", "addr", "show", "eth0")).toContain("10.88.73.2/24");
  await expect(PodNetwork.adopt(path)).rejects.toThrow(`has no ${TAP} any more`);
});

it("replaces what a dead VM left: a detached tap, or a redirect to a tap that is gone", async () => {
  const first = await PodNetwork.setup(path); // never attached: what a VM that died leaves
  const second = await PodNetwork.setup(path);
  expect(ingressOf("eth0")).toContain(`Redirect to device ${TAP})`);
  sh("ip", "-n", ns, "link", "del", TAP);
  expect(ingressOf("eth0")).toContain("Redirect to device *)");
  await expect(PodNetwork.adopt(path)).rejects.toThrow(`has no ${TAP} any more`);
  const third = await PodNetwork.setup(path);
  expect(ingressOf("eth0")).toContain(`Redirect to device ${TAP})`);
  await third.close();
  await second.close();
  await first.close();
  expect(links()).not.toContain(TAP);
  expect(hasIngress()).toBe(false);
});

it("refuses a namespace whose interface has someone else's ingress qdisc, and leaves it as it was", async () => {
  sh("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "ingress");
  await expect(PodNetwork.setup(path)).rejects.toThrow("already has an ingress qdisc that is not Aegis's");
  expect(hasIngress()).toBe(true);
  expect(links()).not.toContain(TAP);
});

it("refuses a namespace with no IPv4 interface, and one whose tap a running VM holds", async () => {
  sh("ip", "-n", ns, "addr", "flush", "dev", "eth0");
  await expect(PodNetwork.setup(path)).rejects.toThrow("has no interface with an IPv4 address");
  sh("ip", "-n", ns, "addr", "add", "10.88.73.2/24", "dev", "eth0");
  // A process attached to the tap (as QEMU is): the tap has carrier.
  const net = await PodNetwork.setup(path);
  // TUNSETIFF (0x400454ca) with IFF_TAP|IFF_NO_PI (0x1002) on /dev/net/tun, as QEMU does; the fd stays open while it sleeps.
  const attach = `const { dlopen, FFIType, ptr } = require("bun:ffi"); const fs = require("node:fs");
const L = dlopen("libc.so.6", { ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 } }).symbols;
const fd = fs.openSync("/dev/net/tun", "r+"); const req = Buffer.alloc(40); req.write("${TAP}"); req.writeUInt16LE(0x1002, 16);
if (L.ioctl(fd, 0x400454ca, ptr(req)) !== 0) process.exit(3); console.log("held"); setTimeout(() => {}, 60000);`;
  const holder = Bun.spawn(["nsenter", `--net=${path}`, process.execPath, "-e", attach], { stdout: "pipe", stderr: "pipe" });
  try {
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("held");
    await expect(PodNetwork.setup(path)).rejects.toThrow(`already has ${TAP} in use`);
  } finally {
    holder.kill("SIGKILL");
    await holder.exited;
  }
  await net.close();
});
