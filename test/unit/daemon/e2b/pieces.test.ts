import { describe, expect, it } from "bun:test";
import { AppError } from "../../../../src/api/errors.ts";
import { shellQuote } from "../../../../src/cli/commands/e2b/env.ts";
import { entryInfo, permissionString } from "../../../../src/daemon/e2b/entry-info.ts";
import { basicUser } from "../../../../src/daemon/e2b/envd.ts";
import { parseMetadataFilter } from "../../../../src/daemon/e2b/rest.ts";
import { directRoute } from "../../../../src/daemon/router/resolve.ts";

describe("envd entry info", () => {
  it("renders permissions as ls -l does", () => {
    expect(permissionString("dir", 0o755)).toBe("drwxr-xr-x");
    expect(permissionString("file", 0o644)).toBe("-rw-r--r--");
    expect(permissionString("symlink", 0o777)).toBe("Lrwxrwxrwx");
  });

  it("maps a FileStat into the protobuf JSON of EntryInfo", () => {
    expect(entryInfo({ path: "/a/b", name: "b", type: "symlink", size: 0, mode: 0o777, uid: 0, gid: 1000, mtime_ms: 1_700_000_000_123.7, link_target: "/x" })).toEqual({
      name: "b",
      type: "FILE_TYPE_SYMLINK",
      path: "/a/b",
      size: "0",
      mode: 0o777,
      permissions: "Lrwxrwxrwx",
      owner: "root",
      group: "1000",
      modifiedTime: "2023-11-14T22:13:20.123Z",
      symlinkTarget: "/x",
    });
  });
});

describe("E2B request details", () => {
  it("reads the user of a Basic authorization header", () => {
    expect(basicUser(`Basic ${Buffer.from("user:").toString("base64")}`)).toBe("user");
    expect(basicUser(null)).toBeUndefined();
    expect(basicUser(`Basic ${Buffer.from(":").toString("base64")}`)).toBeUndefined();
  });

  it("decodes the SDK's doubly encoded metadata filter", () => {
    const pairs = new URLSearchParams({ [encodeURIComponent("k y")]: encodeURIComponent("v&=1"), b: "2" }).toString();
    expect(parseMetadataFilter(pairs)).toEqual({ "k y": "v&=1", b: "2" });
    expect(parseMetadataFilter(undefined)).toEqual({});
  });

  it("quotes only what the shell would split", () => {
    expect(shellQuote("http://127.0.0.1:8098")).toBe("http://127.0.0.1:8098");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});

describe("router direct port routes", () => {
  const lookup = (n: string) => (n === "inst-1" || n === "web" ? { instanceId: "inst-1", handle: "web" } : n === "8080-app" ? { instanceId: "inst-2", handle: "8080-app" } : undefined);
  const h = (o: Record<string, string>) => new Headers(o);

  it("routes E2b-Sandbox-Id / E2b-Sandbox-Port to that port", () => {
    const r = directRoute(h({ "e2b-sandbox-id": "inst-1", "e2b-sandbox-port": "3000" }), "/x?y", [], lookup);
    expect(r).toEqual({ instance: { instanceId: "inst-1", handle: "web", guestPort: 3000 }, path: "/x?y", rule: "port" });
  });

  it("refuses half of the header pair, a bad port and an unknown sandbox", () => {
    expect((directRoute(h({ "e2b-sandbox-id": "inst-1" }), "/", [], lookup) as AppError).code).toBe("invalid_request");
    expect((directRoute(h({ "e2b-sandbox-id": "inst-1", "e2b-sandbox-port": "70000" }), "/", [], lookup) as AppError).code).toBe("invalid_request");
    expect((directRoute(h({ "e2b-sandbox-id": "nope", "e2b-sandbox-port": "80" }), "/", [], lookup) as AppError).code).toBe("not_found");
  });

  it("routes PORT-NAME.localhost, but an instance named PORT-NAME keeps its own host", () => {
    expect(directRoute(h({ host: "8000-web.localhost:8099" }), "/", [], lookup)).toMatchObject({ instance: { instanceId: "inst-1", guestPort: 8000 }, rule: "port" });
    expect(directRoute(h({ host: "8080-app.localhost:8099" }), "/", [], lookup)).toBeNull();
    expect(directRoute(h({ host: "web.localhost" }), "/", [], lookup)).toBeNull();
    expect(directRoute(h({ host: "0-web.localhost" }), "/", [], lookup)).toBeNull();
    expect(directRoute(h({ host: "127.0.0.1:8099" }), "/", [], lookup)).toBeNull();
  });
});
