import { describe, expect, it } from "bun:test";
import { parseReference } from "../../../src/daemon/images/reference.ts";

const D = `sha256:${"a".repeat(64)}`;

describe("image references", () => {
  it("puts single-name Docker Hub images under library/ with the default tag latest", () => {
    expect(parseReference("alpine")).toMatchObject({ kind: "registry", registry: "registry-1.docker.io", repository: "library/alpine", tag: "latest", canonical: "docker.io/library/alpine:latest" });
    expect(parseReference("alpine:3.21")).toMatchObject({ repository: "library/alpine", tag: "3.21" });
    expect(parseReference("python:3.12-alpine")).toMatchObject({ repository: "library/python", tag: "3.12-alpine" });
    expect(parseReference("docker.io/org/app")).toMatchObject({ registry: "registry-1.docker.io", repository: "org/app" });
  });
  it("keeps other registries, ports and digests", () => {
    expect(parseReference("ghcr.io/org/name:tag")).toMatchObject({ registry: "ghcr.io", repository: "org/name", tag: "tag" });
    const r = parseReference(`localhost:5000/x/y@${D}`);
    expect(r).toMatchObject({ registry: "localhost:5000", repository: "x/y", digest: D, tag: undefined, canonical: `localhost:5000/x/y@${D}` });
    expect(parseReference(`127.0.0.1:5000/x:v1@${D}`)).toMatchObject({ tag: "v1", digest: D });
  });
  it("parses oci: layouts with an optional tag and docker-archive: paths", () => {
    expect(parseReference("oci:/tmp/lay:v2")).toMatchObject({ kind: "oci", path: "/tmp/lay", tag: "v2" });
    expect(parseReference("oci:/tmp/lay")).toMatchObject({ kind: "oci", path: "/tmp/lay", tag: undefined });
    expect(parseReference("docker-archive:/tmp/a.tar")).toMatchObject({ kind: "docker-archive", path: "/tmp/a.tar" });
  });
  it("names the wrong part of a bad reference", () => {
    const msg = (r: string) => {
      try {
        parseReference(r);
      } catch (err) {
        return (err as Error).message;
      }
      return "no error";
    };
    expect(msg("Alpine")).toContain('repository component "Alpine" must be lowercase');
    expect(msg("alpine:-bad")).toContain('tag "-bad"');
    expect(msg("alpine@sha256:abc")).toContain('digest "sha256:abc"');
    expect(msg(`alpine@sha512:${"a".repeat(128)}`)).toContain('digest algorithm "sha512" is not supported');
    expect(msg("bad_host:99999/x")).toContain('registry host "bad_host:99999"');
    expect(msg("a//b")).toContain('repository component ""');
    expect(msg("")).toContain("is empty");
    expect(msg("oci:")).toContain("layout path");
    expect(msg("docker-archive:")).toContain("archive path");
    expect(msg("al pine")).toContain("whitespace");
  });
});
