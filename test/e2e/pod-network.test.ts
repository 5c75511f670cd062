/**
 * The pod network mode end to end (issue 18 item 3; vmm/network/pod.ts):
 * the test plays CNI's bridge plugin (a network namespace of its own, a veth
 * pair with the host end 10.88.N.1/24 and the namespace end `eth0`
 * 10.88.N.2/24, default route via .1, and a resolv.conf for the namespace),
 * then a real aegisd (root) boots an instance with `--netns` (the API's
 * `netns_path`). From the host, curl-like fetches reach busybox httpd in the
 * guest at the pod IP; the guest reaches a server the test runs on the host
 * end; the guest has the pod's MAC, address and DNS. The VM survives a
 * SIGKILL of aegisd (live restore) and still answers; stopping it leaves no
 * tap or tc filter and the namespace intact. The boot time of the pod mode
 * is compared with a slirp VM (both cold boots, no templates), and printed.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { TestHome } from "../helpers/aegis.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

const home = new TestHome();
const n = 100 + Math.floor(Math.random() * 150);
const ns = `aegis-podtest-${n}`;
const hostIf = `podt${n}`;
const hostIp = `10.88.${n}.1`;
const podIp = `10.88.${n}.2`;
let hostServer: ReturnType<typeof Bun.serve> | undefined;
// A generous boot watchdog: the machine running these tests is shared and loaded (TCG).
const env = { AEGIS_PAUSE_AFTER: "0", AEGIS_TEMPLATES: "0", AEGIS_BOOT_TIMEOUT_MS: "90000" };

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (exit ${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** GET `url` until it answers or `ms` pass (httpd starts after the instance is running). */
async function getUntil(url: string, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      return await res.text();
    } catch (err) {
      last = String(err);
    }
    await Bun.sleep(250);
  }
  throw new Error(`${url} did not answer within ${ms} ms: ${last}`);
}

beforeAll(async () => {
  sh(["ip", "netns", "add", ns]);
  sh(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  sh(["ip", "addr", "add", `${hostIp}/24`, "dev", hostIf]);
  sh(["ip", "link", "set", hostIf, "up"]);
  sh(["ip", "-n", ns, "addr", "add", `${podIp}/24`, "dev", "eth0"]);
  sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
  sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  sh(["ip", "-n", ns, "route", "add", "default", "via", hostIp]);
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/resolv.conf`, `nameserver ${hostIp}\nsearch pod.test svc.test\noptions ndots:2\n`);
  hostServer = Bun.serve({ hostname: hostIp, port: 0, fetch: () => new Response("HOST-END\n") });
  await home.ok(["up"], { env });
}, 60_000);

afterAll(async () => {
  await home[Symbol.asyncDispose]();
  hostServer?.stop(true);
  Bun.spawnSync(["ip", "link", "del", hostIf]);
  Bun.spawnSync(["ip", "netns", "del", ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
});

it("refuses a netns_path that is not a namespace, and pod networks with --expose or --allow", async () => {
  const notNs = await home.run(["instance", "start", "--name", "bad1", "--netns", "/tmp", "--", "true"], { env });
  expect(notNs.code).not.toBe(0);
  expect(notNs.stderr).toContain("is not a namespace file");
  const missing = await home.run(["instance", "start", "--name", "bad2", "--netns", "/run/netns/no-such-ns-here", "--", "true"], { env });
  expect(missing.stderr).toContain("does not exist");
  const expose = await home.run(["instance", "start", "--name", "bad3", "--netns", `/run/netns/${ns}`, "--expose", "8080", "--", "true"], { env });
  expect(expose.stderr).toContain("netns_path cannot be combined with expose");
  const allow = await home.run(["instance", "start", "--name", "bad4", "--netns", `/run/netns/${ns}`, "--allow", "10.0.0.0/8", "--", "true"], { env });
  expect(allow.stderr).toContain("netns_path cannot be combined with network");
}, 60_000);

it("a server in the guest answers on the pod IP from the host, the guest reaches the host end, and nothing is left after stop", async () => {
  // A slirp VM first, for the boot-time comparison (same shape, same kind of command, cold boot).
  const web = ["sh", "-c", "mkdir -p /w && echo POD-WEB > /w/index.html && exec httpd -f -p 8080 -h /w"];
  let t = performance.now();
  await home.ok(["instance", "start", "--name", "slirp", "--", ...web], { env });
  const slirpMs = performance.now() - t;
  await home.ok(["instance", "stop", "slirp"], { env });

  t = performance.now();
  await home.ok(["instance", "start", "--name", "pod", "--netns", `/run/netns/${ns}`, "--", ...web], { env });
  const podMs = performance.now() - t;
  process.stderr.write(`pod-network: instance start (cold boot) slirp ${slirpMs.toFixed(0)} ms, pod network ${podMs.toFixed(0)} ms\n`);

  expect(await getUntil(`http://${podIp}:8080/`, 30_000)).toBe("POD-WEB\n");
  const info = JSON.parse((await home.ok(["instance", "info", "pod", "--json"])).stdout);
  expect(info.netns_path).toBe(`/run/netns/${ns}`);

  // Guest side: the pod's MAC and address on eth0, its DNS, and the host end reachable through the gateway.
  const mac = JSON.parse(sh(["ip", "-n", ns, "-j", "link", "show", "eth0"]))[0].address as string;
  const probe = [
    "cat /sys/class/net/eth0/address",
    "ip -4 addr show eth0 | grep -o 'inet [0-9./]*'",
    "ip route | grep default",
    "cat /etc/resolv.conf",
    `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${hostIp} ${hostServer!.port} | tail -n 1`,
  ].join("; ");
  const out = (await home.ok(["exec", "pod", "--", "sh", "-c", probe], { env })).stdout;
  expect(out).toContain(mac);
  expect(out).toContain(`inet ${podIp}/24`);
  expect(out).toContain(`default via ${hostIp}`);
  expect(out).toContain(`nameserver ${hostIp}\nsearch pod.test svc.test\noptions ndots:2\n`);
  expect(out.trim().endsWith("HOST-END")).toBe(true);

  // Host side while it runs: the tap and the redirect in the pod's namespace.
  expect(sh(["ip", "-n", ns, "link", "show", "tap0_aegis"])).toContain("tap0_aegis");
  expect(sh(["tc", "-n", ns, "filter", "show", "dev", "eth0", "ingress"])).toContain("Redirect to device tap0_aegis");

  // Live restore: the VM outlives a SIGKILLed aegisd and is adopted by the next one.
  const before = qemuPids(home.dir);
  expect(before.length).toBe(1);
  process.kill(Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8").trim()), "SIGKILL");
  await Bun.sleep(500);
  expect(await getUntil(`http://${podIp}:8080/`, 10_000)).toBe("POD-WEB\n"); // served with no aegisd at all
  await home.ok(["up"], { env });
  expect(qemuPids(home.dir)).toEqual(before);
  expect(JSON.parse((await home.ok(["instance", "info", "pod", "--json"])).stdout).state).toBe("running");
  expect((await home.ok(["exec", "pod", "--", "cat", "/w/index.html"], { env })).stdout).toBe("POD-WEB\n");

  // Exposing a port of the running VM is refused (no slirp to forward with); the instance is unchanged.
  const exposed = await fetch(`http://aegisd/v1/instances/${info.id}/expose`, { unix: `${home.dir}/aegisd.sock`, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ port: 9090 }) });
  expect(exposed.status).toBe(400);
  expect(await exposed.text()).toContain("is on a pod network");
  expect(JSON.parse((await home.ok(["instance", "info", "pod", "--json"])).stdout).expose).toEqual([]);

  // Stop: no tap, no filters, the namespace and CNI's interface untouched.
  await home.ok(["instance", "stop", "pod"], { env });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && sh(["ip", "-n", ns, "link"]).includes("tap0_aegis")) await Bun.sleep(100);
  expect(sh(["ip", "-n", ns, "link"])).not.toContain("tap0_aegis");
  expect(sh(["tc", "-n", ns, "qdisc", "show", "dev", "eth0"])).not.toContain("ingress");
  expect(existsSync(`/run/netns/${ns}`)).toBe(true);
  expect(sh(["ip", "-n", ns, "-4", "addr", "show", "eth0"])).toContain(`inet ${podIp}/24`);
  expect(qemuPids(home.dir)).toEqual([]);

  // The namespace serves a new VM again (a restart of the pod's VM).
  await home.ok(["instance", "start", "--name", "pod"], { env });
  expect(await getUntil(`http://${podIp}:8080/`, 30_000)).toBe("POD-WEB\n");
  await home.ok(["instance", "stop", "pod"], { env });
}, 400_000);
