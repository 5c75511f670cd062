/** `aegis secret set --host/--raw` through a real daemon: what is stored and listed, and bad input refused without a change. */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { TestHome } from "../helpers/aegis.ts";

const home = new TestHome();
beforeAll(async () => {
  await home.ok(["up"]);
}, 60_000);
afterAll(() => home[Symbol.asyncDispose]());

describe("aegis secret bindings", () => {
  it("stores --host bindings and the LLM-key default, and lists which secrets are kept out of guests", async () => {
    await home.ok(["secret", "set", "GH_TOKEN", "ghp-canary", "--host", "api.github.com", "--host", "uploads.example.com:8443"]);
    await home.ok(["secret", "set", "OPENAI_API_KEY", "sk-canary"]);
    await home.ok(["secret", "set", "PLAIN", "p-canary"]);
    await home.ok(["secret", "set", "ANTHROPIC_API_KEY", "-", "--raw"], { stdin: "ant-canary\n" });
    const list = (await home.ok(["secret", "list"])).stdout;
    expect(list).toBe(
      [
        "Workspace secrets:",
        "  ANTHROPIC_API_KEY",
        "  GH_TOKEN  (kept out of guests, substituted for api.github.com, uploads.example.com:8443)",
        "  OPENAI_API_KEY  (kept out of guests, substituted for the host of OPENAI_BASE_URL (default api.openai.com; raw when that is not https))",
        "  PLAIN",
        "",
      ].join("\n"),
    );
    const json = JSON.parse((await home.ok(["secret", "list", "--json"])).stdout);
    expect(json.secrets.find((s: { name: string }) => s.name === "GH_TOKEN").egress).toEqual({ mode: "hosts", hosts: ["api.github.com", "uploads.example.com:8443"] });
    expect(`${list}${JSON.stringify(json)}`).not.toContain("canary");
  });

  it("refuses an IP, a URL or --raw with --host before sending anything", async () => {
    const ip = await home.run(["secret", "set", "BAD", "v", "--host", "10.0.0.1"]);
    expect(ip.code).not.toBe(0);
    expect(ip.stderr).toContain('invalid secret host "10.0.0.1"');
    const url = await home.run(["secret", "set", "BAD", "v", "--host", "https://api.example.com/"]);
    expect(url.stderr).toContain("expected NAME[:PORT]");
    const both = await home.run(["secret", "set", "BAD", "v", "--raw", "--host", "api.example.com"]);
    expect(both.stderr).toContain("--raw cannot be combined with --host");
    const typo = await home.run(["secret", "set", "BAD", "v", "--hots", "api.example.com"]);
    expect(typo.code).not.toBe(0);
    expect((await home.ok(["secret", "list"])).stdout).not.toContain("BAD");
  });
});
