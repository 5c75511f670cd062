import { describe, expect, it } from "bun:test";
import { hostPlatform, type ImageIndex, selectPlatform } from "../../../src/daemon/images/manifest.ts";
import { parseChallenge } from "../../../src/daemon/images/registry-auth.ts";
import { transportFor } from "../../../src/daemon/images/transport.ts";

describe("registry auth and transport", () => {
  it("parses a Bearer challenge with commas inside quoted values", () => {
    const c = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"');
    expect(c).toEqual({ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull,push" } });
    expect(parseChallenge('Basic realm="x"').scheme).toBe("basic");
  });
  it("uses plain HTTP only for loopback hosts or hosts named in AEGIS_INSECURE_REGISTRIES", () => {
    expect(transportFor("localhost:5000", {})).toBe("http");
    expect(transportFor("127.0.0.1:5000", {})).toBe("http");
    expect(transportFor("127.3.2.1", {})).toBe("http");
    expect(transportFor("[::1]:5000", {})).toBe("http");
    expect(transportFor("ghcr.io", {})).toBe("https");
    expect(transportFor("10.0.0.5:5000", {})).toBe("https");
    expect(transportFor("10.0.0.5:5000", { AEGIS_INSECURE_REGISTRIES: "foo, 10.0.0.5:5000" })).toBe("http");
    expect(transportFor("reg.lan:5000", { AEGIS_INSECURE_REGISTRIES: "reg.lan" })).toBe("http");
    expect(transportFor("localhost.evil.com", {})).toBe("https");
  });
  it("selects the host platform from an index and lists what exists otherwise", () => {
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    const index: ImageIndex = {
      schemaVersion: 2,
      manifests: [
        { mediaType: "m", digest: d("1"), size: 1, platform: { os: "linux", architecture: "amd64" } },
        { mediaType: "m", digest: d("2"), size: 1, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
        { mediaType: "m", digest: d("3"), size: 1, platform: { os: "unknown", architecture: "unknown" } },
      ],
    };
    expect(selectPlatform(index, "x", { os: "linux", architecture: "amd64" }).digest).toBe(d("1"));
    expect(selectPlatform(index, "x", { os: "linux", architecture: "arm64", variant: "v8" }).digest).toBe(d("2"));
    expect(selectPlatform(index, "x", hostPlatform()).platform?.architecture).toBe(hostPlatform().architecture);
    expect(() => selectPlatform(index, "img", { os: "linux", architecture: "riscv64" })).toThrow("img has no image for linux/riscv64");
  });
});
