/**
 * Pure parts of the host MCP server: output capping, exposed-port URLs,
 * resource URIs, and the client config targets and entries.
 */
import { describe, expect, it } from "bun:test";
import type { Instance } from "../../../src/api/schema/instances.ts";
import { CappedOutput } from "../../../src/mcp/capped-output.ts";
import { endpoints } from "../../../src/mcp/endpoints.ts";
import { configTarget, serverEntry } from "../../../src/mcp/install/targets.ts";
import { parseResourceUri } from "../../../src/mcp/resources.ts";

describe("CappedOutput", () => {
  it("keeps the head up to the cap and counts the rest across chunks", () => {
    const out = new CappedOutput(10);
    out.push(Buffer.from("hello "));
    out.push(Buffer.from("world, again"));
    out.push(Buffer.from("!!"));
    expect(out.dropped).toBe(10);
    expect(out.text()).toBe("hello worl\n[truncated: 10 more bytes]");
  });
  it("adds no marker when nothing was cut, and replaces invalid UTF-8", () => {
    const out = new CappedOutput(10);
    out.push(new Uint8Array([0x61, 0xff, 0x62]));
    expect(out.text()).toBe("a\uFFFDb");
  });
});

describe("endpoints", () => {
  const inst = { handle: "web", expose: [
    { guest_port: 8080, public_port: null, host_port: 4000 },
    { guest_port: 9090, public_port: null, host_port: null },
    { guest_port: 5432, public_port: 15432, host_port: null },
  ] } as unknown as Instance;
  it("gives the router URL to the first unpublished port only, and tcp:// to published ones", () => {
    expect(endpoints(inst, "http://127.0.0.1:8099/")).toEqual([
      { guest_port: 8080, public_port: null, url: "http://127.0.0.1:8099/web/", host_url: "http://web.localhost:8099/" },
      { guest_port: 9090, public_port: null, url: null, host_url: null },
      { guest_port: 5432, public_port: 15432, url: "tcp://127.0.0.1:15432", host_url: null },
    ]);
  });
});

describe("parseResourceUri", () => {
  it("accepts the two templates and nothing else", () => {
    expect(parseResourceUri("aegis://instances/web/logs")).toEqual({ instance: "web", kind: "logs" });
    expect(parseResourceUri("aegis://instances/inst-1a/tether")).toEqual({ instance: "inst-1a", kind: "tether" });
    for (const bad of ["aegis://instances/web", "aegis://instances/a/b/logs", "file:///etc/passwd", "aegis://instances/web/logs?x"]) expect(parseResourceUri(bad)).toBeNull();
  });
});

describe("config targets", () => {
  const where = { home: "/h", cwd: "/p", platform: "linux" as const };
  it("follows each client's documented locations", () => {
    expect(configTarget("claude", "user", where)).toEqual({ path: "/h/.claude.json", key: "mcpServers" });
    expect(configTarget("claude", "project", where)).toEqual({ path: "/p/.mcp.json", key: "mcpServers" });
    expect(configTarget("cursor", "user", where)).toEqual({ path: "/h/.cursor/mcp.json", key: "mcpServers" });
    expect(configTarget("cursor", "project", where)).toEqual({ path: "/p/.cursor/mcp.json", key: "mcpServers" });
    expect(configTarget("vscode", "project", where)).toEqual({ path: "/p/.vscode/mcp.json", key: "servers" });
    expect(configTarget("vscode", "user", where)).toEqual({ path: "/h/.config/Code/User/mcp.json", key: "servers" });
    expect(configTarget("vscode", "user", { ...where, xdgConfig: "/x" }).path).toBe("/x/Code/User/mcp.json");
    expect(configTarget("vscode", "user", { ...where, platform: "darwin" }).path).toBe("/h/Library/Application Support/Code/User/mcp.json");
  });
  it("writes type stdio except for Cursor, and env only when there is some", () => {
    const launch = { command: "/bin/aegis", args: ["mcp"], env: {} };
    expect(serverEntry("claude", launch)).toEqual({ type: "stdio", command: "/bin/aegis", args: ["mcp"] });
    expect(serverEntry("cursor", { ...launch, env: { AEGIS_HOME: "/a" } })).toEqual({ command: "/bin/aegis", args: ["mcp"], env: { AEGIS_HOME: "/a" } });
  });
});
