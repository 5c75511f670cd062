/**
 * @module cli/commands/mcp
 * `aegis mcp ...`: the host MCP server for coding agents. `aegis mcp` with
 * no subcommand serves MCP on stdio (what clients run), like `aegis mcp
 * serve`; `install` / `uninstall` register it with a client.
 */
import { defineCommand } from "citty";
import { withDefaultSubCommand } from "../_groups.ts";

export default withDefaultSubCommand(
  defineCommand({
    meta: { name: "mcp", description: "MCP server for coding agents: 'aegis mcp' serves on stdio; install/uninstall register it with Claude Code, Cursor or VS Code" },
    subCommands: {
      serve: () => import("./serve.ts").then((m) => m.default),
      install: () => import("./install.ts").then((m) => m.default),
      uninstall: () => import("./uninstall.ts").then((m) => m.default),
    },
  }),
  "serve",
);
