/**
 * @module mcp/server
 * The host MCP server: every tool (tools/*) and the resources
 * (resources.ts) on one SDK `McpServer`, over one {@link DaemonLink}.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { DaemonLink } from "./daemon-link.ts";
import { registerResources } from "./resources.ts";
import { type HostTool, registerTools } from "./tool.ts";
import { fileTools } from "./tools/files.ts";
import { instanceTools } from "./tools/instances.ts";
import { networkTools } from "./tools/network.ts";
import { processTools } from "./tools/processes.ts";
import { storeTools } from "./tools/store.ts";
import { tetherTools } from "./tools/tether.ts";

/** Every tool, in `tools/list` order. */
export const HOST_TOOLS: readonly HostTool[] = [...processTools.slice(0, 1), ...instanceTools, ...processTools.slice(1), ...fileTools, ...networkTools, ...storeTools, ...tetherTools] as HostTool[];

const INSTRUCTIONS = `Aegis runs commands and servers in local microVMs (own kernel, no access to the host's files or processes).
- One-off command: run (fresh VM, destroyed afterwards).
- Stateful work: instance_start (e.g. command ["sleep","infinity"]), then exec / file_read / file_write / file_list; instances pause when idle and wake on use; instance_delete when done.
- Servers: instance_start with expose, or expose on a running instance; the URL is returned.
- Agent Kit instances: tether_send, then tether_read(after_seq: the seq it returned).
- Secrets: name them (secret_list shows names); values are set only by the person with 'aegis secret set'.`;

/** The server with its tools and resources; connect it to a transport to serve. `stop` ends resource followers. */
export function createHostMcpServer(link: DaemonLink, version: string): { server: McpServer; stop: () => void } {
  const server = new McpServer(
    { name: "aegis", title: "Aegis microVMs", version },
    { instructions: INSTRUCTIONS, capabilities: { resources: { subscribe: true } } },
  );
  registerTools(server, link, HOST_TOOLS);
  const stop = registerResources(server, link);
  return { server, stop };
}
