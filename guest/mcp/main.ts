/**
 * @module guest/mcp/main
 * `aegis-mcp-guest`: the Model Context Protocol server present in every
 * guest (`/usr/bin/aegis-mcp-guest`, or `aegis __mcp-guest`). An MCP client
 * inside the VM (the agent runtime, any LLM tool host) starts it and speaks
 * MCP over its stdin/stdout; stdout therefore carries protocol only, and
 * diagnostics go to stderr.
 *
 * Its tools (see tools.ts) let the instance start, list and stop child VMs,
 * expose its own ports and hold off the idle pause. Every call is forwarded to
 * the host through the bridge socket (`AEGIS_MCP_BRIDGE`, see bridge.ts and
 * `api/schema/mcp.ts`); aegisd checks it against the capabilities it stored
 * for this instance. Built with the official MCP TypeScript SDK (McpServer +
 * StdioServerTransport), which runs in the compiled binary (checked by
 * test/integration/mcp-server.test.ts).
 *
 * It runs until stdin closes (the client went away) or SIGTERM/SIGINT.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { MCP_BRIDGE_DEFAULT_PATH, MCP_BRIDGE_ENV } from "../../src/api/schema/mcp.ts";
import { VERSION } from "../../src/api/version.ts";
import { SocketBridge } from "./bridge.ts";
import { createMcpServer } from "./tools.ts";

const USAGE = `usage: aegis-mcp-guest

MCP server (stdio) for controlling the Aegis instance it runs in: self_info,
instance_spawn, instance_list, instance_stop, expose_port, unexpose_port,
keepalive_acquire, keepalive_release. Start it from an MCP client inside the VM.
Requests go to the host through the unix socket in ${MCP_BRIDGE_ENV}
(default ${MCP_BRIDGE_DEFAULT_PATH}); the host enforces this instance's capabilities.
`;

/** Serve MCP on stdin/stdout until the client closes stdin or a signal arrives. */
export async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`aegis-mcp-guest: unexpected argument ${JSON.stringify(argv[0])}\nhint: aegis-mcp-guest takes no arguments; an MCP client starts it and talks over stdio (aegis-mcp-guest --help)\n`);
    process.exit(2);
  }
  const bridgePath = process.env[MCP_BRIDGE_ENV] || MCP_BRIDGE_DEFAULT_PATH;
  const bridge = new SocketBridge(bridgePath);
  const server = createMcpServer(bridge, VERSION);
  const transport = new StdioServerTransport();
  transport.onerror = (err) => process.stderr.write(`aegis-mcp-guest: ${err.message}\n`);
  await server.connect(transport);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.stdin.off("end", stop).off("close", stop);
      process.off("SIGTERM", stop).off("SIGINT", stop);
      resolve();
    };
    process.stdin.on("end", stop).on("close", stop);
    process.on("SIGTERM", stop).on("SIGINT", stop);
  });
  bridge.close();
  await server.close();
}
