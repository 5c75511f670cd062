import { describe, expect, it } from "bun:test";
import * as wire from "../../../src/api/schema/guest-wire.ts";
import * as control from "../../../src/api/schema/control.ts";
import * as mcp from "../../../src/api/schema/mcp.ts";
import { MAX_FRAME_BYTES } from "../../../src/api/schema/tether.ts";
import { PODNET_KEY } from "../../../src/api/schema/pod-network.ts";

describe("guest wire constants (zod-free, for the harness)", () => {
  it("names exactly the MCP bridge methods the schemas define, in order", () => {
    expect<string[]>([...wire.MCP_BRIDGE_METHOD_NAMES]).toEqual(Object.keys(mcp.McpBridgeMethods));
    expect(mcp.GuestRequests).toBe(mcp.McpBridgeMethods);
  });

  it("is what the schema modules re-export, so host and guest share one value", () => {
    expect(control.RpcErrorCode).toBe(wire.RpcErrorCode);
    expect(control.CONTROL_PORT_NAME).toBe(wire.CONTROL_PORT_NAME);
    expect(control.MAX_TRACKED_PROCESSES).toBe(wire.MAX_TRACKED_PROCESSES);
    expect(mcp.McpBridgeErrorCode).toBe(wire.McpBridgeErrorCode);
    expect(mcp.MCP_BRIDGE_DEFAULT_PATH).toBe(wire.MCP_BRIDGE_DEFAULT_PATH);
    expect(MAX_FRAME_BYTES).toBe(wire.MAX_FRAME_BYTES);
    expect(PODNET_KEY).toBe(wire.PODNET_KEY);
  });

  it("imports nothing, so the harness's boot path never evaluates zod", async () => {
    const text = await Bun.file(new URL("../../../src/api/schema/guest-wire.ts", import.meta.url)).text();
    expect(text).not.toMatch(/^\s*import\s/m);
    for (const f of ["main.ts", "port.ts", "config.ts", "setup.ts", "uptime.ts"]) {
      const src = await Bun.file(new URL(`../../../guest/harness/${f}`, import.meta.url)).text();
      expect({ f, zod: /^import (?!type)[^;]*from "(zod|[^"]*\/schema\/(?!guest-wire)[^"]*)"/m.test(src) }).toEqual({ f, zod: false });
    }
  });
});
