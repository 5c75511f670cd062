/** The TLS server-name gate's pure parts: which VMs get one, the nft diversion, the name verdict, the conntrack lookup. */
import { describe, expect, it } from "bun:test";
import { parseRules, type NetworkRule } from "../../../../src/api/network-policy.ts";
import { gatePlumbing, vmRules, vmTeardown } from "../../../../src/vmm/network/nft.ts";
import { GATE_PORT, needsGate, originalDestination, sniVerdict } from "../../../../src/vmm/network/sni-gate.ts";

const rules = (...r: [NetworkRule["action"], string][]): NetworkRule[] => r.map(([action, target]) => ({ action, target }));

describe("needsGate", () => {
  it("gates a policy that allows a domain on any port or 443, nothing else", () => {
    for (const [r, want] of [
      [rules(["allow", "api.example.com"]), true],
      [rules(["allow", "*.example.com:443"]), true],
      [rules(["allow", "example.com:8080"]), false],
      [rules(["deny", "example.com"]), false],
      [rules(["allow", "198.18.0.0/15"], ["allow", "host:80"], ["deny", "*"]), false],
    ] as const) {
      expect(needsGate(parseRules([...r]), [...r])).toBe(want);
    }
  });
});

describe("sniVerdict", () => {
  const r = rules(["deny", "evil.example.com"], ["allow", "*.example.com"], ["allow", "other.example.org:8443"], ["allow", "198.18.0.0/15"], ["deny", "*"]);
  const v = (name: string | undefined) => sniVerdict(parseRules(r), r, name);
  it("lets the first domain or * rule covering the name on port 443 decide", () => {
    expect(v("api.example.com")).toBe("allow");
    expect(v("API.Example.COM.")).toBe("allow");
    expect(v("evil.example.com")).toBe("deny");
    expect(v("other.example.org")).toBe("deny"); // its rule is for port 8443 only; then `deny *`
    expect(v("example.net")).toBe("deny");
  });
  it("refuses a ClientHello without a name", () => {
    expect(v(undefined)).toBe("deny");
    expect(v("")).toBe("deny");
  });
  it("falls back to the default (public names allowed) when no name rule matches", () => {
    const only = rules(["allow", "api.example.com"]);
    expect(sniVerdict(parseRules(only), only, "elsewhere.example.net")).toBe("allow");
  });
});

describe("originalDestination", () => {
  const table = [
    "ipv4     2 tcp      6 431999 ESTABLISHED src=10.231.0.6 dst=198.18.0.10 sport=40000 dport=80 src=198.18.0.10 dst=10.231.0.6 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2",
    "ipv4     2 tcp      6 118 SYN_RECV src=10.231.0.6 dst=198.18.0.12 sport=40002 dport=443 src=10.231.0.5 dst=10.231.0.6 sport=15443 dport=40002 mark=0 zone=0 use=2",
    "ipv4     2 tcp      6 431999 ESTABLISHED src=10.231.0.10 dst=198.18.0.10 sport=40002 dport=443 src=10.231.0.9 dst=10.231.0.10 sport=15443 dport=40002 [ASSURED] mark=0 zone=0 use=2",
  ].join("\n");
  it("finds the address the guest dialled from the entry whose reply comes from the gate", () => {
    expect(originalDestination(table, "10.231.0.6", 40002, "10.231.0.5")).toEqual({ host: "198.18.0.12", port: 443 });
    expect(originalDestination(table, "10.231.0.10", 40002, "10.231.0.9")).toEqual({ host: "198.18.0.10", port: 443 });
  });
  it("finds nothing for a connection that was not diverted, or another VM's port", () => {
    expect(originalDestination(table, "10.231.0.6", 40000, "10.231.0.5")).toBeUndefined();
    expect(originalDestination(table, "10.231.0.6", 40001, "10.231.0.5")).toBeUndefined();
  });
});

describe("the gate's nft rules", () => {
  it("diverts port 443 of an allowed domain in rule order, and leaves earlier matches to the filter", () => {
    const policy = { mode: "default" as const, rules: rules(["deny", "198.18.0.12"], ["allow", "pub.example"], ["allow", "api.example:8443"], ["allow", "[2001:db8::/32]"], ["allow", "host:80"], ["deny", "*"]) };
    const script = vmRules(1, policy, GATE_PORT);
    const pre = script.split("\n").filter((l) => l.startsWith("add rule inet aegis vm1_pre ")).map((l) => l.slice("add rule inet aegis vm1_pre ".length));
    expect(pre).toEqual([
      "ip daddr { 127.0.0.0/8, 10.231.0.0/16 } return",
      "ip daddr 198.18.0.12/32 return",
      "ip daddr @vm1_r1 tcp dport 443 dnat ip to 10.231.0.5:15443",
      "ip daddr @vm1_r1 return",
      "ip daddr @vm1_r2 meta l4proto { tcp, udp } th dport 8443 return",
      "return",
    ]);
    expect(script).toContain("add rule inet aegis vm1_in ip daddr 10.231.0.5 tcp dport 15443 accept");
    expect(script).toContain('add element inet aegis vm_pre { "aegis1" : jump vm1_pre }');
    expect(vmRules(1, policy)).not.toContain("vm1_pre");
    expect(vmRules(1, policy)).not.toContain("15443");
  });
  it("tears the gate chain down only when it is there, and rewrites the shared hook idempotently", () => {
    expect(vmTeardown(1, [], { fwd: true, inp: true, chains: true, pre: true, preChain: true })).toStartWith('delete element inet aegis vm_pre { "aegis1" }\nflush chain inet aegis vm1_pre\ndelete chain inet aegis vm1_pre\n');
    expect(vmTeardown(1, [])).not.toContain("vm1_pre");
    expect(gatePlumbing()).toContain("flush chain inet aegis prerouting\nadd rule inet aegis prerouting iifname vmap @vm_pre\n");
  });
});
