/**
 * VM egress policy end to end (issue 10): real VMs under a real aegisd
 * (root: network namespaces + nftables), against host loopback services,
 * the router, another instance, and a fake internet + LAN + DNS in a
 * namespace the test creates (helpers/fake-internet.ts). Three boots: a
 * served instance, a prober task with rules, a --no-network task.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { slotAddresses } from "../../src/vmm/network/nft.ts";
import { TestHome } from "../helpers/aegis.ts";
import { FakeInternet } from "../helpers/fake-internet.ts";

const home = new TestHome();
let inet: FakeInternet;
const hostServers: ReturnType<typeof Bun.serve>[] = [];
let routerUrl = "";

function hostServer(hostname: string, name: string): number {
  const s = Bun.serve({ hostname, port: 0, fetch: () => new Response(`${name}\n`) });
  hostServers.push(s);
  return s.port!;
}

/** A shell line that prints `label=<last line of the HTTP answer or nc's error>`. */
function probe(label: string, host: string, port: number): string {
  return `echo "${label}=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port} 2>&1 | tail -n 1)"`;
}

function results(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]));
}

const env = { AEGIS_DNS_UPSTREAM: "198.18.0.53", AEGIS_PAUSE_AFTER: "0" };
const REFUSED = "nc: can't connect to remote host";

beforeAll(async () => {
  inet = await FakeInternet.start([
    { addr: "198.18.0.10", port: 80, name: "PUBLIC" },
    { addr: "198.18.0.12", port: 80, name: "PUBLIC-12" },
    { addr: "10.239.0.2", port: 8080, name: "LAN-8080" },
    { addr: "10.239.0.2", port: 8081, name: "LAN-8081" },
    { addr: "10.239.0.2", port: 8083, name: "LAN-8083" },
  ]);
  await home.ok(["up"], { env });
  routerUrl = JSON.parse((await home.ok(["status", "--json"])).stdout).router_url;
}, 60_000);

afterAll(async () => {
  await home[Symbol.asyncDispose]();
  for (const s of hostServers) s.stop(true);
  await inet?.[Symbol.asyncDispose]();
});

describe("VM egress policy", () => {
  it("refuses the host, the router and other VMs by default, allows the public internet, host:PORT, and ordered rules", async () => {
    const refusedPort = hostServer("127.0.0.1", "HOST-LOOPBACK");
    const allowedPort = hostServer("127.0.0.1", "HOST-ALLOWED");
    const ownAddrPort = hostServer("0.0.0.0", "HOST-OWN-ADDR");
    const routerPort = Number(new URL(routerUrl).port);

    // Another instance, served through the router (which must keep working).
    await home.ok(["instance", "start", "--name", "web", "--expose", "8080", "--", "sh", "-c", "mkdir -p /w && echo GUEST-WEB > /w/index.html && exec httpd -f -p 8080 -h /w"], { env });
    const viaRouter = await fetch(`${routerUrl}/`, { headers: { host: "web.localhost" } });
    expect(await viaRouter.text()).toBe("GUEST-WEB\n");
    const info = JSON.parse((await home.ok(["instance", "info", "web", "--json"])).stdout);
    expect(info.network).toEqual({ mode: "default", rules: [] });
    const webHostPort: number = info.expose[0].host_port;
    const qemuPid = Bun.spawnSync(["pgrep", "-f", `instances/${info.id}/`]).stdout.toString().trim().split("\n")[0]!;
    const webNs = Bun.spawnSync(["ip", "netns", "identify", qemuPid]).stdout.toString().trim();
    expect(webNs).toMatch(/^aegis-\d+$/);
    const webNsIp = slotAddresses(Number(webNs.slice("aegis-".length))).ns;

    const script = [
      probe("public", "198.18.0.10", 80),
      probe("public_dns", "pub.example", 80),
      probe("host_loopback", "10.0.2.2", refusedPort),
      probe("host_allowed", "10.0.2.2", allowedPort),
      probe("router", "10.0.2.2", routerPort),
      probe("other_vm_forward", "10.0.2.2", webHostPort),
      probe("other_vm_netns", webNsIp, webHostPort),
      probe("host_own_addr", "10.239.0.1", ownAddrPort),
      probe("metadata", "169.254.169.254", 80),
      probe("lan_before_dns", "10.239.0.2", 8080),
      'echo "lan_dns=$(nslookup -type=a lan.example 2>&1 | grep -c 10.239.0.2)"',
      probe("lan_after_dns", "10.239.0.2", 8080),
      probe("lan_wrong_port", "10.239.0.2", 8081),
      probe("deny_before_allow", "198.18.0.12", 80),
      probe("allow_before_deny", "10.239.0.2", 8083),
      // The malicious guest: raw 127.0.0.1 routed to slirp (research §1).
      "ip addr del 127.0.0.1/8 dev lo 2>/dev/null; ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null; echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; ip route add 127.0.0.0/8 via 10.0.2.2 2>/dev/null",
      probe("raw_loopback", "127.0.0.1", refusedPort),
    ].join("; ");
    const r = await home.ok(
      ["run", "--allow", `host:${allowedPort}`, "--allow", "lan.example:8080", "--deny", "198.18.0.12", "--allow", "198.18.0.12", "--allow", "10.239.0.2:8083", "--deny", "10.239.0.2", "--", "sh", "-c", script],
      { env },
    );
    const got = results(r.stdout);
    expect(got.public).toBe("PUBLIC");
    expect(got.public_dns).toBe("PUBLIC");
    expect(got.host_allowed).toBe("HOST-ALLOWED");
    expect(got.lan_dns).toBe("1");
    expect(got.lan_after_dns).toBe("LAN-8080");
    expect(got.allow_before_deny).toBe("LAN-8083");
    for (const k of ["host_loopback", "router", "other_vm_forward", "other_vm_netns", "host_own_addr", "metadata", "lan_before_dns", "lan_wrong_port", "deny_before_allow", "raw_loopback"]) {
      expect(`${k}: ${got[k]}`).toContain(`${k}: ${REFUSED}`);
    }
  }, 300_000);

  it("gives a --no-network VM nothing: no public internet, no DNS", async () => {
    const script = [probe("public", "198.18.0.10", 80), 'echo "dns=$(nslookup -type=a pub.example 2>&1 | grep -c 198.18.0.10)"'].join("; ");
    const r = await home.ok(["run", "--no-network", "--", "sh", "-c", script], { env });
    const got = results(r.stdout);
    expect(got.public).toContain(REFUSED);
    expect(got.dns).toBe("0");
  }, 200_000);

  it("rejects bad rules with a clear message before anything boots", async () => {
    const r = await home.run(["run", "--allow", "10.0.0.0/33", "--", "true"], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid network rule "10.0.0.0/33": prefix length "/33" is not 0-32');
    const both = await home.run(["run", "--no-network", "--allow", "host:1", "--", "true"], { env });
    expect(both.stderr).toContain("--no-network cannot be combined with --allow or --deny");
  });
});
