/**
 * A stand-in for the internet and a LAN, in a network namespace the test
 * creates (docs/design/network-policy-research.md §6), so VM egress tests
 * need no real network and send nothing off the machine:
 * - netns `aegis-test-inet`, joined to the host by a veth (host 10.239.0.1,
 *   namespace 10.239.0.2: a "LAN" address, private and so refused by default);
 * - 198.18.0.10/.12 ("public", RFC 2544 benchmarking range) and 198.18.0.53
 *   (DNS) on its loopback, routed from the host via the veth;
 * - HTTP servers answering their own name, and dnsmasq answering
 *   `pub.example` and `lan.example`.
 * Requires root (the e2e machines are).
 */
import { rmSync } from "node:fs";

const NS = "aegis-test-inet";
const HOST_IF = "agtinet0";

function sh(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

/** The running fake internet; dispose to remove everything it created. */
export class FakeInternet {
  private readonly procs: Bun.Subprocess[] = [];
  readonly dns = "198.18.0.53";

  /** Create the namespace, routes, HTTP servers (`addr:port` -> body `name`) and DNS. */
  static async start(servers: { addr: string; port: number; name: string }[]): Promise<FakeInternet> {
    const fi = new FakeInternet();
    FakeInternet.cleanup();
    sh(["ip", "netns", "add", NS]);
    sh(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NS]);
    sh(["ip", "addr", "add", "10.239.0.1/30", "dev", HOST_IF]);
    sh(["ip", "link", "set", HOST_IF, "up"]);
    for (const c of [["addr", "add", "10.239.0.2/30", "dev", "eth0"], ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"], ["route", "add", "default", "via", "10.239.0.1"]]) sh(["ip", "-n", NS, ...c]);
    for (const a of ["198.18.0.10", "198.18.0.12", "198.18.0.53"]) sh(["ip", "-n", NS, "addr", "add", `${a}/32`, "dev", "lo"]);
    sh(["ip", "route", "replace", "198.18.0.0/15", "via", "10.239.0.2"]);
    const script = `for (const s of ${JSON.stringify(servers)}) Bun.serve({ hostname: s.addr, port: s.port, fetch: () => new Response(s.name + "\\n") }); console.log("ready");`;
    const http = Bun.spawn(["ip", "netns", "exec", NS, process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    fi.procs.push(http);
    const reader = (http.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    if (!new TextDecoder().decode(value).includes("ready")) throw new Error("fake internet HTTP servers did not start");
    reader.releaseLock();
    fi.procs.push(
      Bun.spawn(
        ["ip", "netns", "exec", NS, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces", `--listen-address=${fi.dns}`, "--address=/pub.example/198.18.0.10", "--address=/lan.example/10.239.0.2", "--local-ttl=60", "--pid-file="],
        { stdout: "ignore", stderr: "ignore" },
      ),
    );
    await Bun.sleep(300);
    return fi;
  }

  /** Remove the namespace, veth and route (also what a crashed earlier run left). */
  static cleanup(): void {
    Bun.spawnSync(["ip", "route", "del", "198.18.0.0/15"], { stderr: "ignore" });
    Bun.spawnSync(["ip", "link", "del", HOST_IF], { stderr: "ignore" });
    Bun.spawnSync(["ip", "netns", "del", NS], { stderr: "ignore" });
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const p of this.procs) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => p.exited));
    FakeInternet.cleanup();
  }
}
