import { describe, expect, it } from "bun:test";
import { describePolicy, domainMatches, hostPorts, narrowPolicy, parseRuleTarget, parseRules } from "../../../src/api/network-policy.ts";

describe("network rules", () => {
  it("parses CIDRs, addresses, IPv6 in brackets, domains, wildcards, * and host:PORT", () => {
    expect(parseRuleTarget("10.0.0.0/8")).toEqual({ kind: "cidr", family: 4, address: "10.0.0.0", prefix: 8 });
    expect(parseRuleTarget("192.168.1.5:5432")).toEqual({ kind: "cidr", family: 4, address: "192.168.1.5", prefix: 32, port: 5432 });
    expect(parseRuleTarget("[fd00::/8]:443")).toEqual({ kind: "cidr", family: 6, address: "fd00::", prefix: 8, port: 443 });
    expect(parseRuleTarget("API.Example.com:443")).toEqual({ kind: "domain", name: "api.example.com", wildcard: false, port: 443 });
    expect(parseRuleTarget("*.example.com")).toEqual({ kind: "domain", name: "example.com", wildcard: true });
    expect(parseRuleTarget("*:22")).toEqual({ kind: "any", port: 22 });
    expect(parseRuleTarget("host:11434")).toEqual({ kind: "host", port: 11434 });
  });

  it("rejects bad rules with the rule and the accepted forms", () => {
    expect(() => parseRuleTarget("10.0.0.0/33")).toThrow('invalid network rule "10.0.0.0/33": prefix length "/33" is not 0-32; expected CIDR');
    expect(() => parseRuleTarget("300.1.1.1")).toThrow('"300.1.1.1" is not an IPv4 address');
    expect(() => parseRuleTarget("example.com:0")).toThrow('port "0" is not 1-65535');
    expect(() => parseRuleTarget("fd00::1")).toThrow("write an IPv6 address in brackets");
    expect(() => parseRuleTarget("host")).toThrow("host needs a port");
    expect(() => parseRuleTarget("localhost")).toThrow("is not a domain name with at least two labels");
    expect(() => parseRuleTarget("")).toThrow("it is empty");
    expect(() => parseRules([{ action: "deny", target: "host:80" }])).toThrow("--deny host:80 is not needed");
  });

  it("matches domains exactly, wildcards on subdomains only", () => {
    expect(domainMatches({ name: "example.com", wildcard: false }, "Example.COM.")).toBe(true);
    expect(domainMatches({ name: "example.com", wildcard: false }, "a.example.com")).toBe(false);
    expect(domainMatches({ name: "example.com", wildcard: true }, "a.example.com")).toBe(true);
    expect(domainMatches({ name: "example.com", wildcard: true }, "example.com")).toBe(false);
    expect(domainMatches({ name: "example.com", wildcard: true }, "badexample.com")).toBe(false);
  });

  it("lists host ports, none for --no-network", () => {
    expect(hostPorts({ mode: "default", rules: [{ action: "allow", target: "host:1" }, { action: "allow", target: "1.2.3.4" }] })).toEqual([1]);
    expect(hostPorts({ mode: "none", rules: [] })).toEqual([]);
  });

  it("never gives a spawned child more than its parent", () => {
    const parent = { mode: "default" as const, rules: [{ action: "deny" as const, target: "10.0.0.5" }, { action: "allow" as const, target: "10.0.0.0/8" }] };
    expect(narrowPolicy(parent, undefined)).toBe(parent);
    expect(() => narrowPolicy(parent, { mode: "default", rules: [{ action: "allow", target: "192.168.0.0/16" }] })).toThrow("its parent's policy does not allow it");
    // The parent's deny comes before the child's allow of the same range.
    expect(narrowPolicy(parent, { mode: "default", rules: [{ action: "allow", target: "10.0.0.0/8" }] }).rules[0]).toEqual({ action: "deny", target: "10.0.0.5" });
    expect(narrowPolicy({ mode: "none", rules: [] }, { mode: "default", rules: [] }).mode).toBe("none");
  });

  it("describes the whole policy, default included", () => {
    expect(describePolicy({ mode: "default", rules: [{ action: "allow", target: "host:11434" }] })).toEqual(["allow host:11434", "default: public internet allowed; host, other VMs and private ranges refused"]);
    expect(describePolicy({ mode: "none", rules: [] })[0]).toContain("none");
  });
});
