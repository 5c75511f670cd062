/** E2B's allowInternetAccess / network options onto the Aegis egress policy and back (daemon/e2b/network.ts). */
import { describe, expect, it } from "bun:test";
import { InvalidRequest } from "../../../../src/api/errors.ts";
import { e2bNetworkInfo, policyFromE2b } from "../../../../src/daemon/e2b/network.ts";

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidRequest);
    return (err as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("policyFromE2b", () => {
  it("asks for nothing when no option is given (the template's policy or the default applies)", () => {
    expect(policyFromE2b(undefined, undefined)).toBeUndefined();
    expect(policyFromE2b(true, {})).toBeUndefined();
    expect(policyFromE2b(undefined, { allowPublicTraffic: true, rules: {}, httpsPorts: [] })).toBeUndefined();
  });
  it("puts every allowOut before every denyOut, as E2B's allow-takes-precedence says", () => {
    expect(policyFromE2b(undefined, { denyOut: ["0.0.0.0/0", "198.51.100.0/24"], allowOut: ["api.example.com", "*.pkg.example.org", "198.51.100.7"] })).toEqual({
      mode: "default",
      rules: [
        { action: "allow", target: "api.example.com" },
        { action: "allow", target: "*.pkg.example.org" },
        { action: "allow", target: "198.51.100.7" },
        { action: "deny", target: "*" },
        { action: "deny", target: "198.51.100.0/24" },
      ],
    });
  });
  it("brackets IPv6 entries and keeps Aegis's own forms", () => {
    expect(policyFromE2b(undefined, { allowOut: ["2001:db8::/32", "host:11434", "API.Example.com:443"], denyOut: ["::/0"] })?.rules).toEqual([
      { action: "allow", target: "[2001:db8::/32]" },
      { action: "allow", target: "host:11434" },
      { action: "allow", target: "api.example.com:443" },
      { action: "deny", target: "*" },
    ]);
  });
  it("treats allowInternetAccess: false as denyOut all traffic: no network at all, or only the allowed", () => {
    expect(policyFromE2b(false, undefined)).toEqual({ mode: "none", rules: [] });
    expect(policyFromE2b(false, { denyOut: ["198.51.100.0/24"] })).toEqual({ mode: "none", rules: [] });
    expect(policyFromE2b(false, { allowOut: ["api.example.com"] })).toEqual({ mode: "default", rules: [{ action: "allow", target: "api.example.com" }, { action: "deny", target: "*" }] });
  });
  it("refuses entries that do not parse, naming the field, index and entry", () => {
    expect(refusal(() => policyFromE2b(undefined, { allowOut: ["ok.example.com", "10.0.0.0/99"] }))).toStartWith('network.allowOut[1] "10.0.0.0/99": invalid network rule "10.0.0.0/99": prefix length');
    expect(refusal(() => policyFromE2b(undefined, { denyOut: ["host:80"] }))).toContain('network.denyOut[0] "host:80"');
    expect(refusal(() => policyFromE2b(undefined, { allowOut: ["localhost"] }))).toContain("is not a domain name");
  });
  it("refuses what Aegis cannot honour instead of ignoring it", () => {
    const cases: [Parameters<typeof policyFromE2b>[1], string][] = [
      [{ rules: { "api.openai.com": [{ transform: { headers: { Authorization: "x" } } }] } }, "network.rules is not supported"],
      [{ egressProxy: { address: "proxy.example.com:1080" } }, "network.egressProxy is not supported"],
      [{ maskRequestHost: "${PORT}-x.example.com" }, "network.maskRequestHost is not supported"],
      [{ httpsPorts: [3000] }, "network.httpsPorts is not supported"],
      [{ allowPublicTraffic: false }, "network.allowPublicTraffic is not supported"],
    ];
    for (const [net, message] of cases) expect(refusal(() => policyFromE2b(undefined, { allowOut: ["api.example.com"], ...net }))).toStartWith(message);
  });
});

describe("e2bNetworkInfo", () => {
  it("reports a policy in E2B's shape", () => {
    expect(e2bNetworkInfo({ mode: "none", rules: [] })).toEqual({ allowInternetAccess: false });
    expect(e2bNetworkInfo({ mode: "default", rules: [] })).toEqual({ allowInternetAccess: true });
    const p = policyFromE2b(false, { allowOut: ["api.example.com", "2001:db8::/32"], denyOut: ["198.51.100.0/24"] })!;
    expect(e2bNetworkInfo(p)).toEqual({ allowInternetAccess: false, network: { allowOut: ["api.example.com", "2001:db8::/32"], denyOut: ["198.51.100.0/24", "0.0.0.0/0"] } });
    expect(e2bNetworkInfo({ mode: "default", rules: [{ action: "deny", target: "198.51.100.0/24" }] })).toEqual({ allowInternetAccess: true, network: { denyOut: ["198.51.100.0/24"] } });
  });
});
