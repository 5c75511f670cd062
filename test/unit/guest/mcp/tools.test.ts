/**
 * The MCP tools of aegis-mcp-guest, in process: the SDK's Client talks to the
 * server over an in-memory transport, and a recording bridge plays the host.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { KEEPALIVE_MAX_S, McpBridgeErrorCode } from "../../../../src/api/schema/mcp.ts";
import { BridgeRefusal, type HostBridge } from "../../../../guest/mcp/bridge.ts";
import { createMcpServer, TOOLS } from "../../../../guest/mcp/tools.ts";
import { type Handler, sampleChild, sampleHandlers } from "./fake-host.ts";

class RecordingBridge implements HostBridge {
  readonly calls: { method: string; params: unknown }[] = [];
  constructor(readonly handlers: Record<string, Handler>) {}
  async request(method: string, params: unknown): Promise<unknown> {
    this.calls.push({ method, params });
    const handler = this.handlers[method];
    if (!handler) throw new BridgeRefusal(McpBridgeErrorCode.methodNotFound, `method not found: ${method}`);
    return handler(params);
  }
}

let bridge: RecordingBridge;
let client: Client;

beforeEach(async () => {
  bridge = new RecordingBridge(sampleHandlers());
  const server = createMcpServer(bridge, "1.2.3");
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  client = new Client({ name: "test", version: "0" });
  await client.connect(clientSide);
});
afterEach(async () => {
  await client.close();
});

const text = (result: Awaited<ReturnType<Client["callTool"]>>) => (result.content as { type: string; text: string }[])[0]!.text;

describe("aegis-mcp-guest tools", () => {
  it("introduces itself as aegis-mcp-guest with the build version", () => {
    expect(client.getServerVersion()).toMatchObject({ name: "aegis-mcp-guest", version: "1.2.3" });
  });

  it("lists the eight tools with strict input schemas", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(["self_info", "instance_spawn", "instance_list", "instance_stop", "expose_port", "unexpose_port", "keepalive_acquire", "keepalive_release"]);
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    const spawn = byName.instance_spawn!.inputSchema;
    // Every spawn field is optional: no image means the base rootfs (pattern @base).
    expect(spawn.required ?? []).toEqual([]);
    expect(Object.keys(spawn.properties ?? {}).sort()).toEqual(["command", "env", "expose", "image", "memory_mb", "name", "secrets", "vcpus"]);
    expect(spawn.additionalProperties).toBe(false);
    expect(byName.instance_stop!.inputSchema.required).toEqual(["instance"]);
    expect(byName.expose_port!.inputSchema.required).toEqual(["port"]);
    expect(byName.keepalive_acquire!.inputSchema.properties?.seconds).toMatchObject({ minimum: 1, maximum: KEEPALIVE_MAX_S });
    expect(byName.self_info!.inputSchema.properties ?? {}).toEqual({});
    expect(byName.self_info!.annotations?.readOnlyHint).toBe(true);
    for (const t of tools) expect(t.outputSchema?.type).toBe("object");
  });

  const calls: [string, Record<string, unknown>, string][] = [
    ["self_info", {}, "mcp.self_info"],
    ["instance_spawn", { image: "busybox", command: ["httpd", "-f", "-p", "8080"], name: "helper", expose: [8080], memory_mb: 256, vcpus: 1, secrets: ["API_KEY"], env: { MODE: "x" } }, "mcp.instance_spawn"],
    ["instance_list", {}, "mcp.instance_list"],
    ["instance_stop", { instance: "helper", delete: true }, "mcp.instance_stop"],
    ["expose_port", { port: 3000 }, "mcp.expose_port"],
    ["unexpose_port", { port: 3000 }, "mcp.unexpose_port"],
    ["keepalive_acquire", { seconds: 600 }, "mcp.keepalive_acquire"],
    ["keepalive_release", {}, "mcp.keepalive_release"],
  ];
  for (const [tool, args, method] of calls) {
    it(`${tool} forwards its arguments to ${method} and returns the host's answer`, async () => {
      const result = await client.callTool({ name: tool, arguments: args });
      expect(result.isError).toBeFalsy();
      expect(bridge.calls).toEqual([{ method, params: args }]);
      const expected = await sampleHandlers()[method]!(args);
      expect(result.structuredContent).toEqual(expected as Record<string, unknown>);
      expect(JSON.parse(text(result))).toEqual(expected);
    });
  }

  it("covers every tool in TOOLS", () => {
    expect(calls.map((c) => c[0]).sort()).toEqual(TOOLS.map((t) => t.name).sort());
  });

  it("accepts a call without arguments for a tool that takes none", async () => {
    const result = await client.callTool({ name: "instance_list" });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ instances: [sampleChild] });
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ["instance_spawn", { image: "" }, "image"],
    ["instance_spawn", { image: "busybox", name: "Bad_Name" }, "name"],
    ["instance_spawn", { image: "busybox", memory_mb: 64 }, "memory_mb"],
    ["instance_spawn", { image: "busybox", secrets: ["*"] }, "secrets"],
    ["instance_spawn", { image: "busybox", privileged: true }, "privileged"],
    ["expose_port", { port: 70000 }, "port"],
    ["keepalive_acquire", { seconds: KEEPALIVE_MAX_S + 1 }, "seconds"],
    ["keepalive_acquire", { seconds: 0 }, "seconds"],
    ["instance_stop", {}, "instance"],
    ["self_info", { id: "someone-else" }, "id"],
  ];
  for (const [tool, args, field] of invalid) {
    it(`rejects ${tool} ${JSON.stringify(args)} before asking the host`, async () => {
      const result = await client.callTool({ name: tool, arguments: args });
      expect(result.isError).toBe(true);
      expect(text(result)).toContain("Input validation error");
      expect(text(result)).toContain(field);
      expect(bridge.calls).toEqual([]);
    });
  }

  it("turns a host refusal into a tool error with the host's message and hint", async () => {
    bridge.handlers["mcp.instance_spawn"] = () => {
      throw new BridgeRefusal(McpBridgeErrorCode.denied, "this instance already has 2 child instance(s); max_children is 2", { code: "invalid_request", hint: "stop and delete a child first" });
    };
    const result = await client.callTool({ name: "instance_spawn", arguments: { image: "busybox" } });
    expect(result.isError).toBe(true);
    expect(result.content).toEqual([{ type: "text", text: "this instance already has 2 child instance(s); max_children is 2\nhint: stop and delete a child first" }]);
    expect(result.structuredContent).toBeUndefined();
  });

  it("reports a refusal without a hint as the bare message", async () => {
    bridge.handlers["mcp.instance_stop"] = () => {
      throw new BridgeRefusal(McpBridgeErrorCode.notFound, 'instance "db" is not a child of this instance');
    };
    const result = await client.callTool({ name: "instance_stop", arguments: { instance: "db" } });
    expect(result.isError).toBe(true);
    expect(text(result)).toBe('instance "db" is not a child of this instance');
  });

  it("reports a host answer that does not match the result schema as a tool error", async () => {
    bridge.handlers["mcp.keepalive_acquire"] = () => ({ until: 42 });
    const result = await client.callTool({ name: "keepalive_acquire", arguments: { seconds: 5 } });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("the host answered mcp.keepalive_acquire with an unexpected result");
  });

  it("reports an unreachable host as a tool error, not a crash", async () => {
    bridge.handlers["mcp.self_info"] = () => {
      throw new Error("the Aegis host bridge at /run/aegis/mcp.sock is not available (ENOENT)");
    };
    const result = await client.callTool({ name: "self_info", arguments: {} });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain("not available (ENOENT)");
    expect((await client.callTool({ name: "instance_list", arguments: {} })).isError).toBeFalsy();
  });
});
