import { describe, expect, it } from "bun:test";
import { answerElements, elementScript } from "../../../../src/vmm/network/dns.ts";
import { slotAddresses, vmRules, vmTeardown } from "../../../../src/vmm/network/nft.ts";

describe("nft compilation", () => {
  it("addresses slots as /30s of 10.231.0.0/16", () => {
    expect(slotAddresses(1)).toEqual({ host: "10.231.0.5", ns: "10.231.0.6", iface: "aegis1", chain: "vm1" });
    expect(slotAddresses(64)).toMatchObject({ host: "10.231.1.1", ns: "10.231.1.2" });
    expect(() => slotAddresses(0)).toThrow("outside 1-16382");
  });

  it("compiles ordered rules one-to-one between the fixed refusals and the default", () => {
    const script = vmRules(3, { mode: "default", rules: [{ action: "deny", target: "198.18.0.12" }, { action: "allow", target: "198.18.0.12" }, { action: "allow", target: "lan.example:8080" }, { action: "allow", target: "host:11434" }] });
    const chain = script.split("\n").filter((l) => l.startsWith("add rule inet aegis vm3 ")).map((l) => l.slice("add rule inet aegis vm3 ".length));
    expect(chain).toEqual([
      "ct state established,related accept",
      "ip daddr { 127.0.0.0/8, 10.231.0.0/16 } goto refuse",
      "ip daddr 198.18.0.12/32 goto refuse",
      "ip daddr 198.18.0.12/32 accept",
      "ip daddr @vm3_r2 meta l4proto { tcp, udp } th dport 8080 accept",
      "ip6 daddr @vm3_r2_6 meta l4proto { tcp, udp } th dport 8080 accept",
      expect.stringContaining("ip daddr { 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12"),
      expect.stringContaining("ip6 daddr { ::1/128"),
      "accept",
    ]);
    expect(script).toContain("add set inet aegis vm3_r2 { type ipv4_addr; flags timeout; }");
    expect(script).toContain('add element inet aegis vm_fwd { "aegis3" : jump vm3 }');
    expect(script).toContain("add rule inet aegis vm3_in ip daddr 10.231.0.13 meta l4proto { tcp, udp } th dport 53 accept");
  });

  it("refuses everything and serves no DNS for --no-network", () => {
    const script = vmRules(2, { mode: "none", rules: [] });
    expect(script).toContain("add rule inet aegis vm2 goto refuse");
    expect(script).not.toContain("dport 53");
    expect(script).not.toContain("vm2 accept");
  });

  it("tears down what it created", () => {
    expect(vmTeardown(2, ["vm2_r0"])).toContain('delete element inet aegis vm_fwd { "aegis2" }\ndelete element inet aegis vm_inp { "aegis2" }\nflush chain inet aegis vm2');
  });
});

describe("DNS answers into policy sets", () => {
  it("adds the A/AAAA of a matching name or CNAME chain with TTL at least 60 s", () => {
    const rules = [{ index: 1, target: { kind: "domain" as const, name: "example.com", wildcard: true } }];
    const answer = {
      type: "response" as const,
      questions: [{ name: "www.other.net", type: "A" as const }],
      answers: [
        { name: "www.other.net", type: "CNAME" as const, ttl: 300, data: "cdn.example.com" },
        { name: "cdn.example.com", type: "A" as const, ttl: 5, data: "198.18.0.10" },
      ],
    };
    const el = answerElements("vm4", rules, answer as never);
    expect([...el]).toEqual([["vm4_r1", [["198.18.0.10", 60]]]]);
    expect(elementScript(el, false)).toBe("add element inet aegis vm4_r1 { 198.18.0.10 timeout 60s }\n");
    const unrelated = answerElements("vm4", rules, { ...answer, answers: [answer.answers[1]!], questions: [{ name: "x.org", type: "A" }] } as never);
    expect(unrelated.size).toBe(0);
  });
});
