/**
 * The egress proxy on loopback, with real TLS both ways: a client trusting
 * the AEGIS_HOME CA talks to the proxy, which re-originates to a TLS
 * stand-in for api.openai.com (its own test CA, via the test-only
 * AEGIS_EGRESS_EXTRA_CA / AEGIS_EGRESS_CONNECT knobs).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { placeholderFor, type Substitution } from "../../../../src/api/egress-secrets.ts";
import { EgressCa } from "../../../../src/vmm/network/egress-ca.ts";
import { EgressProxy, connectOverrides, egressRules, nameAllowed, registerSubstitutions, forgetSubstitutions } from "../../../../src/vmm/network/egress-proxy.ts";

const dir = mkdtempSync(join(tmpdir(), "aegis-egress-"));
const ca = EgressCa.loadOrCreate(join(dir, "home"));
const upstreamCa = EgressCa.loadOrCreate(join(dir, "upstream"));
const rogueCa = EgressCa.loadOrCreate(join(dir, "rogue"));
let upstream: Server;
let rogue: Server;
let rogueHits = 0;
let proxy: EgressProxy;
const seen: Record<string, string | string[] | undefined>[] = [];

const key: Substitution = { name: "OPENAI_API_KEY", placeholder: placeholderFor("1".repeat(32)), value: "sk-the-real-key", hosts: [{ name: "api.openai.com", port: 443 }] };
const elsewhere: Substitution = { name: "GH_TOKEN", placeholder: placeholderFor("2".repeat(32)), value: "ghp-never-here", hosts: [{ name: "api.github.com", port: 443 }] };
const subs = [key, elsewhere];

function call(servername: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: proxy.listenPorts.get(443), servername, method: body ? "POST" : "GET", path: "/v1/chat", headers, ca: ca.certPem }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

beforeAll(async () => {
  // node:tls + node:http: Bun's node:https ignores SNICallback.
  const http = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ ...req.headers, body, servername: (req.socket as { servername?: string }).servername });
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      setTimeout(() => res.end("data: two\n\n"), 20);
    });
  });
  upstream = createServer({ SNICallback: (name, cb) => cb(null, upstreamCa.contextFor(name)) }, (sock) => http.emit("connection", sock));
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  // A server for rogue.example whose certificate no trusted CA issued (a hijacked route).
  const rogueHttp = createHttpServer((_req, res) => {
    rogueHits++;
    res.end("stolen");
  });
  rogue = createServer({ SNICallback: (name, cb) => cb(null, rogueCa.contextFor(name)) }, (sock) => rogueHttp.emit("connection", sock));
  await new Promise<void>((r) => rogue.listen(0, "127.0.0.1", r));
  const extra = join(dir, "extra-ca.pem");
  writeFileSync(extra, upstreamCa.certPem);
  process.env.AEGIS_EGRESS_EXTRA_CA = extra;
  process.env.AEGIS_EGRESS_CONNECT = `api.openai.com=127.0.0.1:${(upstream.address() as { port: number }).port},rogue.example=127.0.0.1:${(rogue.address() as { port: number }).port}`;
  proxy = await EgressProxy.start({ vmId: "vm-test", listenHost: "127.0.0.1", hosts: [{ name: "api.openai.com", port: 443 }, { name: "rogue.example", port: 443 }], ca, policy: { mode: "default", rules: [] }, log: () => {} });
  registerSubstitutions("vm-test", subs);
});

afterAll(() => {
  proxy?.close();
  upstream?.close();
  rogue?.close();
  delete process.env.AEGIS_EGRESS_EXTRA_CA;
  delete process.env.AEGIS_EGRESS_CONNECT;
  rmSync(dir, { recursive: true, force: true });
});

describe("egress CA", () => {
  it("keeps its key 0600 under AEGIS_HOME and issues leaves for a name that verify against it", () => {
    const p = EgressCa.paths(join(dir, "home"));
    expect(statSync(p.key).mode & 0o777).toBe(0o600);
    expect(EgressCa.loadOrCreate(join(dir, "home")).certPem).toBe(ca.certPem); // made once, then reused
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(ca.certPem).not.toContain("PRIVATE KEY");
  });
});

describe("egress proxy", () => {
  it("puts the real value into the headers for the bound host and leaves other placeholders alone", async () => {
    const r = await call("api.openai.com", { authorization: `Bearer ${key.placeholder}`, "x-other": elsewhere.placeholder, "content-type": "application/json" }, '{"q":"' + key.placeholder + '"}');
    expect(`${r.status} ${r.status === 200 ? "" : r.text}`).toBe("200 ");
    expect(r.text).toBe("data: one\n\ndata: two\n\n");
    const got = seen.at(-1)!;
    expect(got.authorization).toBe("Bearer sk-the-real-key");
    expect(got["x-other"]).toBe(elsewhere.placeholder);
    expect(got.servername).toBe("api.openai.com");
    expect(got.host).toBe("api.openai.com");
    // Headers only: the body goes out as the guest wrote it.
    expect(got.body).toBe('{"q":"' + key.placeholder + '"}');
  });

  it("never sends a secret to an upstream whose certificate does not verify (502 to the guest)", async () => {
    const bound: Substitution = { ...key, hosts: [...key.hosts, { name: "rogue.example", port: 443 }] };
    registerSubstitutions("vm-test", [bound]);
    const r = await call("rogue.example", { authorization: `Bearer ${key.placeholder}` });
    registerSubstitutions("vm-test", subs);
    expect(r.status).toBe(502);
    expect(r.text).toContain("aegis egress proxy: cannot reach rogue.example:443");
    expect(rogueHits).toBe(0);
  });

  it("refuses the TLS handshake for a name no secret of the VM is bound to, and without SNI", async () => {
    const before = seen.length;
    await expect(call("api.github.com", { authorization: elsewhere.placeholder })).rejects.toThrow();
    await expect(call("", {})).rejects.toThrow();
    expect(seen.length).toBe(before);
  });

  it("substitutes nothing once the VM's secrets are forgotten", async () => {
    forgetSubstitutions("vm-test", subs);
    await call("api.openai.com", { authorization: `Bearer ${key.placeholder}` });
    expect(seen.at(-1)!.authorization).toBe(`Bearer ${key.placeholder}`);
    registerSubstitutions("vm-test", subs);
  });
});

describe("policy and plumbing", () => {
  it("applies the VM's ordered rules to the bound name (CIDR rules do not apply to a name)", () => {
    expect(nameAllowed({ mode: "default", rules: [] }, "api.openai.com", 443)).toBe(true);
    expect(nameAllowed({ mode: "none", rules: [] }, "api.openai.com", 443)).toBe(false);
    expect(nameAllowed({ mode: "default", rules: [{ action: "deny", target: "*.openai.com" }] }, "api.openai.com", 443)).toBe(false);
    expect(nameAllowed({ mode: "default", rules: [{ action: "allow", target: "api.openai.com:443" }, { action: "deny", target: "*" }] }, "api.openai.com", 443)).toBe(true);
    expect(nameAllowed({ mode: "default", rules: [{ action: "deny", target: "*:8443" }] }, "api.openai.com", 443)).toBe(true);
    expect(nameAllowed({ mode: "default", rules: [{ action: "deny", target: "10.0.0.0/8" }] }, "api.openai.com", 443)).toBe(true);
  });

  it("parses the test-only connect override and rejects a malformed one", () => {
    expect(connectOverrides("api.openai.com=127.0.0.1:9, x.example:8443=127.0.0.2:10")).toEqual(
      new Map([
        ["api.openai.com:443", { host: "127.0.0.1", port: 9 }],
        ["x.example:8443", { host: "127.0.0.2", port: 10 }],
      ]),
    );
    expect(() => connectOverrides("api.openai.com")).toThrow('AEGIS_EGRESS_CONNECT item "api.openai.com" is not NAME[:PORT]=IP:PORT');
  });

  it("DNATs only the bound hosts' answered addresses on their port, and opens only the proxy port", () => {
    const text = egressRules("vm7", "aegis7", "10.231.0.29", [{ name: "api.openai.com", port: 443 }, { name: "x.example", port: 8443 }], new Map([[443, 40001], [8443, 40002]]));
    expect(text).toBe(
      [
        "add chain inet aegis vm7_eg",
        "add set inet aegis vm7_r9000 { type ipv4_addr; flags timeout; }",
        "add set inet aegis vm7_r9000_6 { type ipv6_addr; flags timeout; }",
        "add rule inet aegis vm7_eg ip daddr @vm7_r9000 tcp dport 443 dnat ip to 10.231.0.29:40001",
        "add set inet aegis vm7_r9001 { type ipv4_addr; flags timeout; }",
        "add set inet aegis vm7_r9001_6 { type ipv6_addr; flags timeout; }",
        "add rule inet aegis vm7_eg ip daddr @vm7_r9001 tcp dport 8443 dnat ip to 10.231.0.29:40002",
        "insert rule inet aegis vm7_in ip daddr 10.231.0.29 tcp dport 40001 accept",
        "insert rule inet aegis vm7_in ip daddr 10.231.0.29 tcp dport 40002 accept",
        'add element inet aegis vm_egress { "aegis7" : jump vm7_eg }',
        "",
      ].join("\n"),
    );
  });
});
