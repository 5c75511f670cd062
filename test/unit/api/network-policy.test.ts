import { describe, expect, it } from "bun:test";
import { DEFAULT_NETWORK, NetworkRuleError, describePolicy, domainMatches, hostPorts, ipv4Octets, ipv6Groups, narrowPolicy, parseRuleTarget, parseRules } from "../../../src/api/network-policy.ts";

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

/** The error a rule gets, as the user reads it. */
function refusal(rule: string): string {
  try {
    parseRuleTarget(rule);
  } catch (e) {
    expect(e).toBeInstanceOf(NetworkRuleError);
    expect((e as Error).name).toBe("NetworkRuleError");
    return (e as Error).message;
  }
  throw new Error(`rule ${JSON.stringify(rule)} was accepted`);
}

const FORMS = "expected CIDR[:PORT] (10.0.0.0/8, 192.168.1.5:5432, [fd00::/8]:443), DOMAIN[:PORT] or *.DOMAIN[:PORT] (api.example.com:443), '*'[:PORT], or host:PORT";

describe("network rules: what is accepted and what is refused", () => {
  it("an unconfigured VM has the default policy with no rules", () => {
    expect(DEFAULT_NETWORK).toStrictEqual({ mode: "default", rules: [] });
  });

  it("accepts ports 1-65535 and refuses anything else with the exact message", () => {
    expect(parseRuleTarget("example.com:1")).toStrictEqual({ kind: "domain", name: "example.com", wildcard: false, port: 1 });
    expect(parseRuleTarget("example.com:65535")).toStrictEqual({ kind: "domain", name: "example.com", wildcard: false, port: 65535 });
    expect(refusal("example.com:65536")).toBe(`invalid network rule "example.com:65536": port "65536" is not 1-65535; ${FORMS}`);
    expect(refusal("example.com:99999")).toBe(`invalid network rule "example.com:99999": port "99999" is not 1-65535; ${FORMS}`);
    expect(refusal("example.com:x1")).toContain('port "x1" is not 1-65535');
    expect(refusal("example.com:1x")).toContain('port "1x" is not 1-65535');
    expect(refusal("example.com:")).toContain('port "" is not 1-65535');
    expect(refusal(":0")).toBe(`invalid network rule ":0": port "0" is not 1-65535; ${FORMS}`);
    expect(refusal(":80")).toBe(`invalid network rule ":80": "" is not a domain name with at least two labels; ${FORMS}`);
  });

  it("takes IPv4 addresses with every octet 0-255 and exactly four octets", () => {
    expect(parseRuleTarget("255.255.255.255")).toStrictEqual({ kind: "cidr", family: 4, address: "255.255.255.255", prefix: 32 });
    expect(parseRuleTarget("1.2.33.4")).toStrictEqual({ kind: "cidr", family: 4, address: "1.2.33.4", prefix: 32 });
    expect(parseRuleTarget("1.2.3.44:8080")).toStrictEqual({ kind: "cidr", family: 4, address: "1.2.3.44", prefix: 32, port: 8080 });
    expect(refusal("1.2.3.4.5")).toBe(`invalid network rule "1.2.3.4.5": "1.2.3.4.5" is not an IPv4 address; ${FORMS}`);
    expect(refusal("1.2.3")).toBe(`invalid network rule "1.2.3": "1.2.3" is not an IPv4 address; ${FORMS}`);
    expect(refusal("256.0.0.1/8")).toContain('"256.0.0.1" is not an IPv4 address');
    expect(ipv4Octets("10.1.200.255")).toEqual([10, 1, 200, 255]);
    expect(ipv4Octets("1.10.1.2.3")).toBeUndefined();
    expect(ipv4Octets("1.2.3.4.5")).toBeUndefined();
  });

  it("takes IPv4 prefix lengths 0-32 written as plain digits", () => {
    expect(parseRuleTarget("0.0.0.0/0")).toStrictEqual({ kind: "cidr", family: 4, address: "0.0.0.0", prefix: 0 });
    expect(parseRuleTarget("10.1.0.0/16:443")).toStrictEqual({ kind: "cidr", family: 4, address: "10.1.0.0", prefix: 16, port: 443 });
    expect(parseRuleTarget("10.1.2.3/32")).toStrictEqual({ kind: "cidr", family: 4, address: "10.1.2.3", prefix: 32 });
    expect(refusal("10.0.0.0/a8")).toContain('prefix length "/a8" is not 0-32');
    expect(refusal("10.0.0.0/8a")).toContain('prefix length "/8a" is not 0-32');
    expect(refusal("10.0.0.0/")).toContain('prefix length "/" is not 0-32');
    expect(refusal("10.0.0.0/008")).toContain('prefix length "/008" is not 0-32');
  });

  it("parses IPv6 in brackets, with an optional /LEN 0-128 and :PORT", () => {
    expect(parseRuleTarget("[::1]")).toStrictEqual({ kind: "cidr", family: 6, address: "::1", prefix: 128 });
    expect(parseRuleTarget("[FD00::/64]")).toStrictEqual({ kind: "cidr", family: 6, address: "fd00::", prefix: 64 });
    expect(parseRuleTarget("[::/0]:53")).toStrictEqual({ kind: "cidr", family: 6, address: "::", prefix: 0, port: 53 });
    expect(parseRuleTarget("[2001:db8::1/128]")).toStrictEqual({ kind: "cidr", family: 6, address: "2001:db8::1", prefix: 128 });
    expect(refusal("[::/129]")).toBe(`invalid network rule "[::/129]": prefix length "/129" is not 0-128; ${FORMS}`);
    expect(refusal("[::/a12]")).toContain('prefix length "/a12" is not 0-128');
    expect(refusal("[::/12a]")).toContain('prefix length "/12a" is not 0-128');
    expect(refusal("[::/]")).toContain('prefix length "/" is not 0-128');
    expect(refusal("[zz::1]")).toBe(`invalid network rule "[zz::1]": "zz::1" is not an IPv6 address; ${FORMS}`);
    expect(refusal("[::1]:0")).toContain('port "0" is not 1-65535');
    expect(refusal("[::1]x")).toContain("write an IPv6 address in brackets, e.g. [fd00::1]:443");
    expect(refusal("x[::1]")).toContain("write an IPv6 address in brackets, e.g. [fd00::1]:443");
  });

  it("reads IPv6 addresses into eight groups, :: filling the gap", () => {
    expect(ipv6Groups("1:2:3:4:5:6:7:ffff")).toEqual([1, 2, 3, 4, 5, 6, 7, 0xffff]);
    expect(ipv6Groups("::1")).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups("fd00::")).toEqual([0xfd00, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups("2001:db8::8:9")).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 8, 9]);
    expect(ipv6Groups("1:2:3:4:5:6::7")).toEqual([1, 2, 3, 4, 5, 6, 0, 7]);
    expect(ipv6Groups("1:2:3:4:5:6:7")).toBeUndefined();
    expect(ipv6Groups("1:2:3:4:5:6:7:8:9")).toBeUndefined();
    expect(ipv6Groups("1:2:3:4:5:6:7::8")).toBeUndefined();
    expect(ipv6Groups("1::2::3")).toBeUndefined();
    expect(ipv6Groups("12345::1")).toBeUndefined();
    expect(ipv6Groups("1.2::")).toBeUndefined();
    expect(ipv6Groups("g::1")).toBeUndefined();
    expect(ipv6Groups("1:::2")).toBeUndefined();
  });

  it("takes domain names of valid labels, at most 253 characters, not ending in a number", () => {
    const label = "a".repeat(63);
    const longest = `${label}.${label}.${label}.${"b".repeat(61)}`;
    expect(longest.length).toBe(253);
    expect(parseRuleTarget(longest)).toStrictEqual({ kind: "domain", name: longest, wildcard: false });
    expect(refusal(`${longest}c`)).toContain("is not a domain name with at least two labels");
    expect(refusal(`${"a".repeat(64)}.com`)).toContain("is not a domain name with at least two labels");
    expect(parseRuleTarget("  Example.COM  ")).toStrictEqual({ kind: "domain", name: "example.com", wildcard: false });
    expect(parseRuleTarget("my-host.example.com")).toStrictEqual({ kind: "domain", name: "my-host.example.com", wildcard: false });
    expect(parseRuleTarget("10.example.com")).toStrictEqual({ kind: "domain", name: "10.example.com", wildcard: false });
    expect(parseRuleTarget("www.123.example.com")).toStrictEqual({ kind: "domain", name: "www.123.example.com", wildcard: false });
    expect(parseRuleTarget("printer.lab1")).toStrictEqual({ kind: "domain", name: "printer.lab1", wildcard: false });
    expect(parseRuleTarget("api.1password")).toStrictEqual({ kind: "domain", name: "api.1password", wildcard: false });
    expect(parseRuleTarget("*.cdn.example.com:443")).toStrictEqual({ kind: "domain", name: "cdn.example.com", wildcard: true, port: 443 });
    expect(refusal("-bad.example.com")).toBe(`invalid network rule "-bad.example.com": "-bad.example.com" is not a domain name with at least two labels; ${FORMS}`);
    expect(refusal("bad-.example.com")).toContain('"bad-.example.com" is not a domain name');
    expect(refusal("a.-b.com")).toContain('"a.-b.com" is not a domain name');
    expect(refusal("under_score.example.com")).toContain("is not a domain name");
    expect(refusal("example..com")).toContain("is not a domain name");
    expect(refusal("a.12")).toBe(`invalid network rule "a.12": "a.12" is not a domain name with at least two labels; ${FORMS}`);
    expect(refusal("example.com/8")).toBe(`invalid network rule "example.com/8": a domain takes no /prefix; ${FORMS}`);
  });

  it("refuses only --deny host:PORT, keeping other denies in order", () => {
    expect(parseRules([{ action: "deny", target: "10.0.0.0/8" }, { action: "deny", target: "*" }, { action: "allow", target: "host:80" }])).toStrictEqual([
      { kind: "cidr", family: 4, address: "10.0.0.0", prefix: 8 },
      { kind: "any" },
      { kind: "host", port: 80 },
    ]);
    expect(() => parseRules([{ action: "deny", target: "host:80" }])).toThrow(
      new NetworkRuleError("--deny host:80 is not needed: the host's services are refused unless allowed with --allow host:PORT"),
    );
  });

  it("opens host ports only for allowed host:PORT rules, none with --no-network", () => {
    expect(hostPorts({ mode: "default", rules: [{ action: "allow", target: "host:1" }, { action: "allow", target: "1.2.3.4" }, { action: "allow", target: "host:8080" }] })).toStrictEqual([1, 8080]);
    expect(hostPorts({ mode: "none", rules: [{ action: "allow", target: "host:80" }] })).toStrictEqual([]);
  });
});

describe("network policy of a spawned child", () => {
  const parent = {
    mode: "default" as const,
    rules: [
      { action: "allow" as const, target: "api.example.com:443" },
      { action: "deny" as const, target: "10.0.0.5" },
      { action: "allow" as const, target: "10.0.0.0/8" },
    ],
  };

  it("is none when either side has no network", () => {
    expect(narrowPolicy(parent, { mode: "none", rules: [] })).toStrictEqual({ mode: "none", rules: [] });
    expect(narrowPolicy({ mode: "none", rules: [] }, { mode: "default", rules: [{ action: "deny", target: "*" }] })).toStrictEqual({ mode: "none", rules: [] });
  });

  it("puts the parent's denies first, then the child's rules, then the parent's list", () => {
    const child = { mode: "default" as const, rules: [{ action: "deny" as const, target: "*:22" }, { action: "allow" as const, target: "10.0.0.0/8" }] };
    expect(narrowPolicy(parent, child)).toStrictEqual({
      mode: "default",
      rules: [
        { action: "deny", target: "10.0.0.5" },
        { action: "deny", target: "*:22" },
        { action: "allow", target: "10.0.0.0/8" },
        { action: "allow", target: "api.example.com:443" },
        { action: "deny", target: "10.0.0.5" },
        { action: "allow", target: "10.0.0.0/8" },
      ],
    });
  });

  it("lets a child deny anything but allow only what its parent allows", () => {
    expect(narrowPolicy(parent, { mode: "default", rules: [{ action: "deny", target: "192.168.0.0/16" }] }).rules).toContainEqual({ action: "deny", target: "192.168.0.0/16" });
    // The parent denies 10.0.0.5: that is no allow a child could copy.
    expect(() => narrowPolicy(parent, { mode: "default", rules: [{ action: "allow", target: "10.0.0.5" }] })).toThrow(
      new NetworkRuleError("a spawned instance cannot be given --allow 10.0.0.5: its parent's policy does not allow it (a child never gets more network than its parent)"),
    );
  });
});
