/**
 * @module mcp/main
 * `aegis mcp` / `aegis-mcp` / `aegis __mcp`: the host MCP server over stdio,
 * for coding agents (Claude Code, Cursor, VS Code). It is a client of
 * aegisd's socket like the CLI, starts aegisd when it is not running, and
 * writes nothing but MCP to stdout: diagnostics go to stderr, and
 * `console.log` from anything we load is redirected there too.
 *
 * It serves until stdin closes (the client went away) or SIGTERM/SIGINT.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { VERSION } from "../api/version.ts";
import { statePaths } from "../paths.ts";
import { DaemonLink } from "./daemon-link.ts";
import { createHostMcpServer, HOST_TOOLS } from "./server.ts";

/** Usage of the `aegis-mcp` role. */
export const USAGE = `usage: aegis mcp   (also: aegis-mcp)

MCP server (stdio) that lets a coding agent run commands and servers in Aegis
microVMs. Register it with your client: aegis mcp install [--client claude|cursor|vscode|json].
Tools: ${HOST_TOOLS.map((t) => t.name).join(", ")}.
Resources: aegis://instances/NAME/logs, aegis://instances/NAME/tether (subscribable).
Uses the aegisd of AEGIS_HOME (default ~/.aegis) and starts it when it is not running.
`;

function note(line: string): void {
  process.stderr.write(`aegis mcp: ${line}\n`);
}

/** Serve MCP on stdin/stdout until the client closes stdin or a signal arrives. */
export async function serveMcp(): Promise<void> {
  // stdout is the protocol channel: a stray console.log would corrupt it.
  console.log = console.info = console.debug = (...args: unknown[]) => process.stderr.write(`${args.map(String).join(" ")}\n`);
  const link = new DaemonLink(statePaths(), note);
  await link.ensureRunning().catch((err: unknown) => note(`could not start aegisd (tools will retry): ${(err as Error).message}`));
  const { server, stop } = createHostMcpServer(link, VERSION);
  const transport = new StdioServerTransport();
  transport.onerror = (err) => note(err.message);
  await server.connect(transport);
  await new Promise<void>((resolve) => {
    const done = () => {
      process.stdin.off("end", done).off("close", done);
      process.off("SIGTERM", done).off("SIGINT", done);
      resolve();
    };
    process.stdin.on("end", done).on("close", done);
    process.on("SIGTERM", done).on("SIGINT", done);
  });
  stop();
  await server.close();
}

/** The `aegis-mcp` role: no arguments but --help. */
export async function main(argv: string[]): Promise<void> {
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`aegis-mcp: unexpected argument ${JSON.stringify(argv[0])}\nhint: aegis-mcp takes no arguments; an MCP client starts it and talks over stdio (aegis-mcp --help)\n`);
    process.exit(2);
  }
  await serveMcp();
  process.exit(0);
}
