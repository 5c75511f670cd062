/**
 * The TLS server-name gate (vmm/network/sni-gate.ts) and DNS over TCP
 * (vmm/network/dns-tcp.ts) on the real host path, without a VM: VmNetwork sets up a VM's namespace, nftables rules, DNS
 * resolver and gate exactly as for QEMU, and a client run inside that
 * namespace stands in for QEMU's user networking (whose sockets live there).
 * The "internet" is a namespace the test makes (helpers/fake-internet.ts)
 * with a TLS server on 198.18.0.10:443; `pub.example` resolves to it.
 * Root only (namespaces, nftables), as on CI.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NetworkPolicy } from "../../src/api/network-policy.ts";
import { VmNetwork } from "../../src/vmm/network/index.ts";
import { slotAddresses } from "../../src/vmm/network/nft.ts";
import { FakeInternet } from "../helpers/fake-internet.ts";

const dir = mkdtempSync(join(tmpdir(), "ag-sni-"));
const logs: string[] = [];
let inet: FakeInternet;
let tls: Bun.Subprocess;
const nets: VmNetwork[] = [];

/** What a client in `net`'s namespace sees: resolve `pub.example` (optional), then one connection. */
async function probe(net: VmNetwork, opts: { resolve: boolean | "tcp"; servername?: string; plain?: boolean; port?: number }): Promise<string> {
  const a = slotAddresses(net.slot!);
  const script = `
    const dns = require("node:dns");
    const r = new dns.promises.Resolver(); r.setServers([${JSON.stringify(a.host)}]);
    const out = (s) => { console.log(s); process.exit(0); };
    (async () => {
      if (${opts.resolve === "tcp"}) {
        const pkt = require("dns-packet");
        const answer = await new Promise((resolve, reject) => {
          const c = require("node:net").connect({ host: ${JSON.stringify(a.host)}, port: 53 }, () => c.write(pkt.streamEncode({ type: "query", id: 4242, flags: pkt.RECURSION_DESIRED, questions: [{ type: "A", name: "pub.example" }] })));
          let got = Buffer.alloc(0);
          c.on("data", (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) { c.destroy(); resolve(pkt.streamDecode(got)); } });
          c.on("error", reject);
        });
        if (answer.id !== 4242 || answer.answers[0]?.data !== "198.18.0.10") out("BAD-DNS " + JSON.stringify(answer.answers));
        if (${opts.servername === undefined && opts.port === undefined}) out("DNS " + answer.answers[0].data);
      } else if (${opts.resolve}) await r.resolve4("pub.example");
      const port = ${opts.port ?? 443};
      if (${opts.plain === true} || port !== 443) {
        const s = require("node:net").connect({ host: "198.18.0.10", port }, () => s.write("GET / HTTP/1.0\\r\\n\\r\\n"));
        let d = ""; s.on("data", (b) => (d += b)); s.on("close", () => out(d ? "BODY " + d.trim().split("\\n").at(-1) : "CLOSED")); s.on("error", (e) => out("ERR " + e.code));
        return;
      }
      const s = require("node:tls").connect({ host: "198.18.0.10", port, rejectUnauthorized: false, ${opts.servername ? `servername: ${JSON.stringify(opts.servername)}` : ""} }, () => s.write("GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n"));
      let d = ""; s.on("data", (b) => (d += b)); s.on("end", () => out(d ? "BODY " + d.trim().split("\\n").at(-1) : "CLOSED")); s.on("error", (e) => out("ERR " + (e.code ?? e.message)));
    })().catch((e) => out("ERR " + (e.code ?? e.message)));
    setTimeout(() => out("TIMEOUT"), 8000);`;
  const p = Bun.spawn(["ip", "netns", "exec", `aegis-${net.slot}`, process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  const [out] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return out.trim();
}

async function network(policy: NetworkPolicy): Promise<VmNetwork> {
  const net = await VmNetwork.setup(policy, dir, dir, (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`));
  nets.push(net);
  expect(net.mode).toBe("isolated");
  return net;
}

beforeAll(async () => {
  process.env.AEGIS_DNS_UPSTREAM = "198.18.0.53";
  process.env.AEGIS_NET_SLOTS_DIR = join(dir, "slots");
  inet = await FakeInternet.start([{ addr: "198.18.0.10", port: 80, name: "PUBLIC-80" }]);
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=pub.example"], { stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl: ${gen.stderr.toString()}`);
  const server = `Bun.serve({ hostname: "198.18.0.10", port: 443, tls: { key: Bun.file(${JSON.stringify(key)}), cert: Bun.file(${JSON.stringify(cert)}) }, fetch: () => new Response("TLS-PUBLIC\\n") }); console.log("ready");`;
  tls = Bun.spawn(["ip", "netns", "exec", "aegis-test-inet", process.execPath, "-e", server], { stdout: "pipe", stderr: "inherit" });
  const reader = (tls.stdout as ReadableStream<Uint8Array>).getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toContain("ready");
  reader.releaseLock();
}, 60_000);

afterAll(async () => {
  for (const n of nets) await n.close();
  tls?.kill("SIGKILL");
  await tls?.exited;
  await inet?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

describe("domain rules and the TLS server name", () => {
  it("passes TLS that names the allowed domain, refuses another name, no name and non-TLS on 443", async () => {
    const net = await network({ mode: "default", rules: [{ action: "allow", target: "pub.example" }, { action: "deny", target: "*" }] });
    expect(await probe(net, { resolve: false, servername: "pub.example" })).toStartWith("ERR ECONNRE"); // no DNS answer yet: refused by address
    expect(await probe(net, { resolve: true, servername: "pub.example" })).toBe("BODY TLS-PUBLIC");
    expect(await probe(net, { resolve: true, servername: "PUB.example" })).toBe("BODY TLS-PUBLIC");
    for (const opts of [{ servername: "evil.example" }, {}, { plain: true }]) {
      expect(await probe(net, { resolve: true, ...opts })).toBe("ERR ECONNRESET");
    }
    // Only 443 is gated: the domain's other ports are checked by address alone.
    expect(await probe(net, { resolve: true, port: 80 })).toBe("BODY PUBLIC-80");
    expect(logs.some((l) => l.includes("server name not allowed") && l.includes('\\"evil.example\\"'))).toBe(true);
  }, 60_000);

  it("does not let the diversion skip an earlier deny of the address", async () => {
    const net = await network({ mode: "default", rules: [{ action: "deny", target: "198.18.0.10" }, { action: "allow", target: "pub.example" }] });
    expect(await probe(net, { resolve: true, servername: "pub.example" })).toStartWith("ERR ECONNRE");
  }, 60_000);

  it("leaves TLS alone for a VM whose policy allows no domain", async () => {
    const net = await network({ mode: "default", rules: [{ action: "allow", target: "198.18.0.10" }, { action: "deny", target: "*" }] });
    expect(await probe(net, { resolve: false, servername: "anything.example" })).toBe("BODY TLS-PUBLIC");
    expect(await probe(net, { resolve: false })).toBe("BODY TLS-PUBLIC");
  }, 60_000);

  it("answers DNS over TCP and records the answer for the domain rule like over UDP", async () => {
    const net = await network({ mode: "default", rules: [{ action: "allow", target: "pub.example" }, { action: "deny", target: "*" }] });
    expect(await probe(net, { resolve: false, servername: "pub.example" })).toStartWith("ERR ECONNRE");
    expect(await probe(net, { resolve: "tcp" })).toBe("DNS 198.18.0.10");
    expect(await probe(net, { resolve: false, servername: "pub.example" })).toBe("BODY TLS-PUBLIC");
  }, 60_000);

  it("removes its chain, map entry and listener with the network", async () => {
    const net = await network({ mode: "default", rules: [{ action: "allow", target: "pub.example" }] });
    const slot = net.slot!;
    const list = () => Bun.spawnSync(["nft", "list", "table", "inet", "aegis"]).stdout.toString();
    expect(list()).toContain(`vm${slot}_pre`);
    await net.close();
    expect(list()).not.toContain(`vm${slot}_pre`);
    expect(list()).not.toContain(`"aegis${slot}" : jump`);
  }, 60_000);
});
