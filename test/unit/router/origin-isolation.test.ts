import { describe, expect, it } from "bun:test";
import { isolateSharedOrigin, scopeCookie, SHARED_ORIGIN_CSP } from "../../../src/daemon/router/origin-isolation.ts";

describe("origin isolation on the shared router origin", () => {
  it("moves cookie paths under the instance prefix", () => {
    expect(scopeCookie("a=1; Path=/", "/web")).toBe("a=1; Path=/web");
    expect(scopeCookie("a=1; path=/x/y; Secure", "/web")).toBe("a=1; Path=/web/x/y; Secure");
    expect(scopeCookie("a=1; PATH = rel", "/web")).toBe("a=1; Path=/web/rel");
    expect(scopeCookie("a=1; HttpOnly", "/web")).toBe("a=1; HttpOnly; Path=/web");
    // A value that merely contains "path=" is not an attribute.
    expect(scopeCookie("path=/; Max-Age=5", "/web")).toBe("path=/; Max-Age=5; Path=/web");
  });
  it("adds the sandbox as another policy and never allows same-origin", () => {
    const h = isolateSharedOrigin(new Headers({ "content-security-policy": "sandbox allow-same-origin allow-scripts" }), "/web");
    expect(h.get("content-security-policy")).toBe(`sandbox allow-same-origin allow-scripts, ${SHARED_ORIGIN_CSP}`);
    expect(SHARED_ORIGIN_CSP).not.toContain("allow-same-origin");
  });
});
