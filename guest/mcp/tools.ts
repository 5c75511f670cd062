/**
 * @module guest/mcp/tools
 * The MCP tools of `aegis-mcp-guest` and the server that carries them. Each
 * tool validates its arguments with the bridge method's zod params schema
 * (the SDK rejects bad arguments before the handler runs), forwards them to
 * the host unchanged and returns the host's validated result as JSON text
 * plus `structuredContent`. The host decides: a refusal comes back as an MCP
 * tool error (`isError: true`) whose text is the host's message and hint.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { KEEPALIVE_MAX_S, type McpBridgeMethod, McpBridgeMethods } from "../../src/api/schema/mcp.ts";
import { BridgeRefusal, type HostBridge } from "./bridge.ts";

/** One tool: its MCP name, the bridge method it forwards to and what the model reads about it. */
export interface ToolDef {
  name: string;
  method: McpBridgeMethod;
  title: string;
  description: string;
  readOnly: boolean;
}

/** The tools, in the order `tools/list` reports them. Descriptions are written for the model that calls them. */
export const TOOLS: readonly ToolDef[] = [
  {
    name: "self_info",
    method: "mcp.self_info",
    title: "This instance",
    description: "Describe the Aegis instance (VM) this server runs in: id, handle, image, parent, exposed ports with their host URLs, child count, keepalive deadline and the capabilities the host granted (what instance_spawn may use).",
    readOnly: true,
  },
  {
    name: "instance_spawn",
    method: "mcp.instance_spawn",
    title: "Start a child VM",
    description: "Start a child Aegis instance (a separate VM) from an image, optionally running a command and exposing guest ports through the host router. The host checks the request against this instance's capabilities (allowed images, memory, vCPUs, secrets, child count, depth; see self_info) and refuses anything outside them. Returns the child, including its exposed URLs.",
    readOnly: false,
  },
  {
    name: "instance_list",
    method: "mcp.instance_list",
    title: "List child VMs",
    description: "List the child instances this instance started (only its own children).",
    readOnly: true,
  },
  {
    name: "instance_stop",
    method: "mcp.instance_stop",
    title: "Stop a child VM",
    description: "Stop one of this instance's children, by id or handle; with delete: true also delete it (freeing a max_children slot). Only own children can be stopped.",
    readOnly: false,
  },
  {
    name: "expose_port",
    method: "mcp.expose_port",
    title: "Expose a port of this VM",
    description: "Make a TCP port of this VM reachable from the host through the Aegis router; returns the URL. Serve on 0.0.0.0, not 127.0.0.1. Limited by the max_exposed_ports capability.",
    readOnly: false,
  },
  {
    name: "unexpose_port",
    method: "mcp.unexpose_port",
    title: "Unexpose a port of this VM",
    description: "Stop exposing a TCP port of this VM through the Aegis router.",
    readOnly: false,
  },
  {
    name: "keepalive_acquire",
    method: "mcp.keepalive_acquire",
    title: "Hold off the idle pause",
    description: `Keep this VM running (not paused for idleness) for the given number of seconds, at most ${KEEPALIVE_MAX_S}. Acquiring again replaces the deadline. Use it for background work that has no open connection; release it when done.`,
    readOnly: false,
  },
  {
    name: "keepalive_release",
    method: "mcp.keepalive_release",
    title: "Release the keepalive",
    description: "Release the keepalive so the idle policy may pause this VM again.",
    readOnly: false,
  },
];

/** The text of a tool error: the host's sentence, then its remedy on a `hint:` line. */
export function refusalText(err: BridgeRefusal): string {
  return err.hint ? `${err.message}\nhint: ${err.hint}` : err.message;
}

/** Call the host for one tool and shape the MCP result. */
export async function callTool(bridge: HostBridge, def: ToolDef, args: unknown): Promise<CallToolResult> {
  let raw: unknown;
  try {
    raw = await bridge.request(def.method, args);
  } catch (err) {
    // A refusal is the expected "no" and goes to the model as a tool error; transport failures propagate (the SDK reports them as tool errors too).
    if (err instanceof BridgeRefusal) return { isError: true, content: [{ type: "text", text: refusalText(err) }] };
    throw err;
  }
  const parsed = McpBridgeMethods[def.method].result.safeParse(raw);
  if (!parsed.success) throw new Error(`the host answered ${def.method} with an unexpected result: ${z.prettifyError(parsed.error)}`);
  const data = parsed.data as Record<string, unknown>;
  return { content: [{ type: "text", text: JSON.stringify(data, null, 2) }], structuredContent: data };
}

/** Build the MCP server with every tool forwarding to `bridge`. Connect it to a transport to serve. */
export function createMcpServer(bridge: HostBridge, version: string): McpServer {
  const server = new McpServer(
    { name: "aegis-mcp-guest", title: "Aegis instance control", version },
    { instructions: "Tools to control the Aegis microVM this server runs in: start, list and stop child VMs, expose ports, and hold off the idle pause. The host enforces the capabilities self_info reports." },
  );
  for (const def of TOOLS) {
    const { params, result } = McpBridgeMethods[def.method];
    server.registerTool(
      def.name,
      {
        title: def.title,
        description: def.description,
        inputSchema: params,
        outputSchema: result,
        annotations: { readOnlyHint: def.readOnly, destructiveHint: def.name === "instance_stop", openWorldHint: false },
      },
      (args: unknown) => callTool(bridge, def, args),
    );
  }
  return server;
}
