/**
 * @module cli/commands/mcp/uninstall
 * `aegis mcp uninstall [--client claude|cursor|vscode] [--scope user|project] [--name N]`:
 * remove what `aegis mcp install` added, and nothing else.
 */
import { defineCommand } from "citty";
import { uninstallServer } from "../../../mcp/install/install.ts";
import type { McpClient, McpScope } from "../../../mcp/install/targets.ts";
import { say } from "../../log.ts";
import { installArgs, serverName } from "./_args.ts";

export default defineCommand({
  meta: { name: "uninstall", description: "Remove the 'aegis mcp' registration from a client (its other servers stay)" },
  args: installArgs,
  async run({ args }) {
    const name = serverName(String(args.name));
    say((await uninstallServer({ client: args.client as McpClient, scope: args.scope as McpScope, name, claude: Bun.which("claude") })).message);
  },
});
