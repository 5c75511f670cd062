/** The TLS server-name gate's pure parts: which VMs get one, the nft diversion, the name verdict. */
import { describe, expect, it } from "bun:test";
import { parseRules, type NetworkRule } from "../../../../src/api/network-policy.ts";
import { gatePlumbing, vmRules, vmTeardown } from "../../../../src/vmm/network/nft.ts";
import { GATE_PORT, needsGate, sniVerdict } from "../../../../src/vmm/network/sni-gate.ts";

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
