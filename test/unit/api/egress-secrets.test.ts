import { describe, expect, it } from "bun:test";
import { boundHosts, describeEgress, httpsHost, newPlaceholderId, parseBoundHost, placeholderFor, secretHosts, substituteHeader, substituteRawHeaders, type Substitution } from "../../../src/api/egress-secrets.ts";

const openai: Substitution = { name: "OPENAI_API_KEY", placeholder: placeholderFor("a".repeat(32)), value: "sk-real-openai", hosts: [{ name: "api.openai.com", port: 443 }] };
const other: Substitution = { name: "GH_TOKEN", placeholder: placeholderFor("b".repeat(32)), value: "ghp-real", hosts: [{ name: "api.github.com", port: 443 }, { name: "uploads.example.com", port: 8443 }] };

describe("placeholders", () => {
  it("are AEGIS_SECRET_ plus 32 random hex digits, different every time", () => {
    const a = newPlaceholderId();
    const b = newPlaceholderId();
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
    expect(placeholderFor(a)).toBe(`AEGIS_SECRET_${a}`);
    expect(() => placeholderFor("xyz")).toThrow('invalid placeholder id "xyz"');
  });
});

describe("bound hosts", () => {
  it("parse NAME[:PORT] with 443 as the default port, lower-cased", () => {
    expect(parseBoundHost("API.OpenAI.com")).toEqual({ name: "api.openai.com", port: 443 });
    expect(parseBoundHost("llm.example.com:8443")).toEqual({ name: "llm.example.com", port: 8443 });
  });

  it("refuse IP addresses, single labels, bad ports and URLs with a message naming the value", () => {
    expect(() => parseBoundHost("10.0.0.1")).toThrow('invalid secret host "10.0.0.1": "10.0.0.1" is not a DNS name');
    expect(() => parseBoundHost("localhost")).toThrow("at least two labels");
    expect(() => parseBoundHost("a.example:0")).toThrow("port 0 is not 1-65535");
    expect(() => parseBoundHost("https://a.example/")).toThrow('invalid secret host "https://a.example/"');
  });

  it("come from an https base URL with a DNS name only", () => {
    expect(httpsHost("https://api.openai.com/v1")).toEqual({ name: "api.openai.com", port: 443 });
    expect(httpsHost("https://gw.example.com:8443/v1")).toEqual({ name: "gw.example.com", port: 8443 });
    expect(httpsHost("http://api.openai.com/v1")).toBeUndefined();
    expect(httpsHost("https://10.0.2.2:8080/v1")).toBeUndefined();
    expect(httpsHost("not a url")).toBeUndefined();
  });
});

describe("secretHosts (where a secret is substituted, null = raw)", () => {
  it("binds the LLM keys to their provider by default, following a custom https base URL", () => {
    expect(secretHosts("OPENAI_API_KEY", { mode: "auto" }, {})).toEqual([{ name: "api.openai.com", port: 443 }]);
    expect(secretHosts("ANTHROPIC_API_KEY", { mode: "auto" }, {})).toEqual([{ name: "api.anthropic.com", port: 443 }]);
    expect(secretHosts("OPENAI_API_KEY", { mode: "auto" }, { OPENAI_BASE_URL: "https://llm.corp.example/v1" })).toEqual([{ name: "llm.corp.example", port: 443 }]);
  });

  it("injects raw what cannot be substituted: plain-http or IP base URLs, other secrets, --raw", () => {
    expect(secretHosts("OPENAI_API_KEY", { mode: "auto" }, { OPENAI_BASE_URL: "http://10.0.2.2:9999/v1" })).toBeNull();
    expect(secretHosts("DB_PASSWORD", { mode: "auto" }, {})).toBeNull();
    expect(secretHosts("OPENAI_API_KEY", { mode: "raw" }, {})).toBeNull();
  });

  it("uses explicit hosts as given, whatever the name", () => {
    expect(secretHosts("GH_TOKEN", { mode: "hosts", hosts: ["api.github.com", "x.example:8443"] }, {})).toEqual([
      { name: "api.github.com", port: 443 },
      { name: "x.example", port: 8443 },
    ]);
  });

  it("describes only substituted bindings", () => {
    expect(describeEgress("DB_PASSWORD", { mode: "auto" })).toBeUndefined();
    expect(describeEgress("X", { mode: "raw" })).toBeUndefined();
    expect(describeEgress("X", { mode: "hosts", hosts: ["a.example"] })).toBe("kept out of guests, substituted for a.example");
    expect(describeEgress("OPENAI_API_KEY", { mode: "auto" })).toContain("api.openai.com");
  });
});

describe("substitution", () => {
  it("replaces the placeholders of secrets bound to the host, in any header, every occurrence", () => {
    const h = { name: "api.openai.com", port: 443 };
    expect(substituteHeader(`Bearer ${openai.placeholder}`, h, [openai, other])).toBe("Bearer sk-real-openai");
    expect(substituteHeader(`${openai.placeholder},${openai.placeholder}`, h, [openai])).toBe("sk-real-openai,sk-real-openai");
    expect(substituteRawHeaders(["Authorization", `Bearer ${openai.placeholder}`, "x-api-key", openai.placeholder, "X-Other", "plain"], h, [openai])).toEqual([
      "Authorization",
      "Bearer sk-real-openai",
      "x-api-key",
      "sk-real-openai",
      "X-Other",
      "plain",
    ]);
  });

  it("leaves a placeholder unchanged for a host (or port) its secret is not bound to", () => {
    const value = `Bearer ${openai.placeholder} token ${other.placeholder}`;
    expect(substituteHeader(value, { name: "api.github.com", port: 443 }, [openai, other])).toBe(`Bearer ${openai.placeholder} token ghp-real`);
    expect(substituteHeader(value, { name: "evil.example", port: 443 }, [openai, other])).toBe(value);
    expect(substituteHeader(other.placeholder, { name: "uploads.example.com", port: 443 }, [other])).toBe(other.placeholder);
    expect(substituteHeader(other.placeholder, { name: "uploads.example.com", port: 8443 }, [other])).toBe("ghp-real");
    // Header names are never values: a placeholder there stays.
    expect(substituteRawHeaders([openai.placeholder, "v"], { name: "api.openai.com", port: 443 }, [openai])).toEqual([openai.placeholder, "v"]);
  });

  it("lists each bound host once", () => {
    expect(boundHosts([openai, other, openai])).toEqual([{ name: "api.openai.com", port: 443 }, { name: "api.github.com", port: 443 }, { name: "uploads.example.com", port: 8443 }]);
  });
});
