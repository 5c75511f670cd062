/**
 * @module cli/commands/mcp/install
 * `aegis mcp install [--client claude|cursor|vscode|json] [--scope user|project] [--name N]`:
 * register the host MCP server with a client (src/mcp/install/install.ts).
 */
import { defineCommand } from "citty";
import { installServer } from "../../../mcp/install/install.ts";
import type { McpClient, McpScope } from "../../../mcp/install/targets.ts";
import { say } from "../../log.ts";
import { out } from "../../output.ts";
import { installArgs, serverName } from "./_args.ts";

export default defineCommand({
  meta: { name: "install", description: "Register 'aegis mcp' with Claude Code (claude mcp add, or its config file), Cursor or VS Code, or print the JSON" },
  args: installArgs,
  async run({ args }) {
    const name = serverName(String(args.name));
    const outcome = await installServer({ client: args.client as McpClient, scope: args.scope as McpScope, name, claude: Bun.which("claude") });
    say(outcome.message);
    if (outcome.stdout !== undefined) out(outcome.stdout);
  },
});
