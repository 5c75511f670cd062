/**
 * bench/network.ts: what the egress policy path costs, host side.
 *
 * A VM's traffic leaves QEMU (slirp) from the VM's network namespace, so the
 * policy path is: namespace -> veth -> the host's nftables (`inet aegis`) ->
 * NAT, plus, for a policy that allows a domain, the TLS server-name gate
 * (vmm/network/sni-gate.ts) on port 443. Through a real VM under TCG the
 * guest itself is the bottleneck (2-5 MiB/s, docs/design/network-policy-research.md
 * §4), which would hide all of this, so the client here is a Bun process run
 * inside a namespace that VmNetwork set up exactly as for a VM (real
 * namespace, nft rules, DNS resolver, gate), standing in for slirp's sockets.
 * The unrestricted path, measured in the same run, is the same client on the
 * host itself (what a VM's slirp did before policies). The "internet" is a
 * namespace this bench creates (test/helpers/fake-internet.ts): HTTP on
 * 198.18.0.10:80 and HTTPS on :443; nothing leaves the machine. Root only.
 *
 * Rows: TCP connect latency (median of CONNECTS), TLS handshake latency,
 * and the throughput of a BIG_MB download over HTTP and HTTPS; each the
 * median of ROUNDS interleaved rounds (all samples are in the JSON).
 *
 * Prints a table and writes bench/results/network.json.
 * Usage: sudo bun bench/network.ts
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NetworkPolicy } from "../src/api/network-policy.ts";
import { VmNetwork } from "../src/vmm/network/index.ts";
import { slotAddresses } from "../src/vmm/network/nft.ts";
import { FakeInternet } from "../test/helpers/fake-internet.ts";
import { report, type Row, stats } from "./_lib.ts";

const CONNECTS = 300;
const BIG_MB = 128;
const ROUNDS = 5;

/** The client: runs in a namespace (or on the host), prints one JSON line. */
const CLIENT = `
const net = require("node:net"), tls = require("node:tls");
const [dnsServer, connects, bigMb] = process.argv.slice(-3);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const tcp = () => new Promise((res, rej) => { const t0 = performance.now(); const s = net.connect({ host: "198.18.0.10", port: 80 }, () => { res(performance.now() - t0); s.destroy(); }); s.on("error", rej); });
const hs = () => new Promise((res, rej) => { const t0 = performance.now(); const s = tls.connect({ host: "198.18.0.10", port: 443, servername: "pub.example", rejectUnauthorized: false }, () => { res(performance.now() - t0); s.destroy(); }); s.on("error", rej); });
// A raw HTTP/1.0 GET (the server closes when done), over TCP or TLS with SNI pub.example; MiB/s.
const download = (secure) => new Promise((res, rej) => {
  const t0 = performance.now(); let n = 0;
  const opts = { host: "198.18.0.10", port: secure ? 443 : 80, servername: "pub.example", rejectUnauthorized: false };
  const s = secure ? tls.connect(opts, go) : net.connect(opts, go);
  function go() { s.write("GET /big HTTP/1.0\\r\\nHost: pub.example\\r\\n\\r\\n"); }
  s.on("data", (c) => (n += c.length));
  s.on("error", rej);
  s.on("close", () => (n < Number(bigMb) * 1048576 ? rej(new Error("short download " + n)) : res(n / 1048576 / ((performance.now() - t0) / 1000))));
});
(async () => {
  if (dnsServer !== "-") { const r = new (require("node:dns").promises.Resolver)(); r.setServers([dnsServer]); await r.resolve4("pub.example"); }
  const out = { tcp: [], tls: [] };
  for (let i = 0; i < 10; i++) { await tcp(); await hs(); }
  for (let i = 0; i < Number(connects); i++) out.tcp.push(await tcp());
  for (let i = 0; i < Number(connects) / 3; i++) out.tls.push(await hs());
  const http = await download(false);
  const https = await download(true);
  console.log(JSON.stringify({ tcp: median(out.tcp), tls: median(out.tls), http, https }));
})().catch((e) => { console.error(String(e)); process.exit(1); });`;

interface Sample {
  tcp: number;
  tls: number;
  http: number;
  https: number;
}

async function client(netns: string | undefined, dns: string): Promise<Sample> {
  const argv = [process.execPath, "-e", CLIENT, dns, String(CONNECTS), String(BIG_MB)];
  const p = Bun.spawn(netns ? ["ip", "netns", "exec", netns, ...argv] : argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`client in ${netns ?? "the host"} failed (${code}): ${err}`);
  return JSON.parse(out) as Sample;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench/network.ts needs root (network namespaces and nftables)");
  const dir = mkdtempSync(join(tmpdir(), "ag-bench-net-"));
  process.env.AEGIS_DNS_UPSTREAM = "198.18.0.53";
  process.env.AEGIS_NET_SLOTS_DIR = join(dir, "slots");
  const inet = await FakeInternet.start([]);
  const nets: VmNetwork[] = [];
  let server: Bun.Subprocess | undefined;
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=pub.example"], { stderr: "pipe" });
    if (gen.exitCode !== 0) throw new Error(`openssl: ${gen.stderr.toString()}`);
    const serve = `
      const chunk = new Uint8Array(1048576).fill(42);
      const fetch = () => { let sent = 0; return new Response(new ReadableStream({ pull(c) { if (sent++ === ${BIG_MB}) c.close(); else c.enqueue(chunk); } })); };
      Bun.serve({ hostname: "198.18.0.10", port: 80, idleTimeout: 0, fetch });
      Bun.serve({ hostname: "198.18.0.10", port: 443, idleTimeout: 0, tls: { key: Bun.file(${JSON.stringify(key)}), cert: Bun.file(${JSON.stringify(cert)}) }, fetch });
      console.log("ready");`;
    server = Bun.spawn(["ip", "netns", "exec", "aegis-test-inet", process.execPath, "-e", serve], { stdout: "pipe", stderr: "inherit" });
    const reader = (server.stdout as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    reader.releaseLock();

    const vm = async (policy: NetworkPolicy) => {
      const n = await VmNetwork.setup(policy, dir, dir, () => {});
      nets.push(n);
      return { ns: `aegis-${n.slot}`, dns: slotAddresses(n.slot!).host };
    };
    const open = await vm({ mode: "default", rules: [] });
    const byAddress = await vm({ mode: "default", rules: [{ action: "allow", target: "198.18.0.10" }, { action: "deny", target: "*" }] });
    const byDomain = await vm({ mode: "default", rules: [{ action: "allow", target: "pub.example" }, { action: "deny", target: "*" }] });

    // One untimed run first: whichever client ran first was measured against a cold server (slower every time).
    // Then ROUNDS interleaved rounds, each metric the median of its rounds (the machine is shared and loaded).
    await client(undefined, "-");
    const runs: Record<"host" | "dflt" | "addr" | "gated", Sample[]> = { host: [], dflt: [], addr: [], gated: [] };
    for (let r = 0; r < ROUNDS; r++) {
      runs.dflt.push(await client(open.ns, open.dns));
      runs.addr.push(await client(byAddress.ns, byAddress.dns));
      runs.gated.push(await client(byDomain.ns, byDomain.dns));
      runs.host.push(await client(undefined, "-"));
    }
    const med = (xs: Sample[]): Sample => ({ tcp: stats(xs.map((x) => x.tcp)).median, tls: stats(xs.map((x) => x.tls)).median, http: stats(xs.map((x) => x.http)).median, https: stats(xs.map((x) => x.https)).median });
    const [host, dflt, addr, gated] = [med(runs.host), med(runs.dflt), med(runs.addr), med(runs.gated)];
    const conntrackEntries = readFileSync("/proc/net/nf_conntrack", "utf8").split("\n").filter(Boolean).length;

    const rows: Row[] = [
      { metric: "TCP connect, default policy (median)", value: dflt.tcp, unit: "ms", baseline: { name: "host, unrestricted", value: host.tcp }, better: "lower" },
      { metric: "TCP connect, allow ADDR + deny * (median)", value: addr.tcp, unit: "ms", baseline: { name: "host, unrestricted", value: host.tcp }, better: "lower" },
      { metric: "TLS handshake, default policy (median)", value: dflt.tls, unit: "ms", baseline: { name: "host, unrestricted", value: host.tls }, better: "lower" },
      { metric: "TLS handshake, allow DOMAIN: SNI gate (median)", value: gated.tls, unit: "ms", baseline: { name: "allow ADDR, no gate", value: addr.tls }, better: "lower" },
      { metric: `HTTP ${BIG_MB} MiB download, default policy`, value: dflt.http, unit: "MiB/s", baseline: { name: "host, unrestricted", value: host.http }, better: "higher" },
      { metric: `HTTPS ${BIG_MB} MiB download, default policy`, value: dflt.https, unit: "MiB/s", baseline: { name: "host, unrestricted", value: host.https }, better: "higher" },
      { metric: `HTTPS ${BIG_MB} MiB download, SNI gate`, value: gated.https, unit: "MiB/s", baseline: { name: "allow ADDR, no gate", value: addr.https }, better: "higher" },
    ];
    report("network", rows, {
      path: "host side: a client in a VM's network namespace (VmNetwork, as for QEMU) vs the same client on the host; no VM (TCG would hide these costs)",
      rounds: ROUNDS,
      samples: { host: runs.host, default_policy: runs.dflt, allow_address: runs.addr, allow_domain_sni_gate: runs.gated },
      conntrack_entries_at_end: conntrackEntries,
      load_average: readFileSync("/proc/loadavg", "utf8").trim(),
    });
  } finally {
    for (const n of nets) await n.close();
    server?.kill("SIGKILL");
    await server?.exited;
    await inet[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
