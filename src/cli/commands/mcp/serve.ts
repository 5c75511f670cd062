/**
 * @module cli/commands/mcp/serve
 * `aegis mcp [serve]`: serve the host MCP server on stdin/stdout until the
 * client closes stdin (see src/mcp/main.ts). An MCP client starts this; it
 * is not meant to be typed.
 */
import { defineCommand } from "citty";
import { serveMcp } from "../../../mcp/main.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve MCP on stdio (the default of 'aegis mcp'; MCP clients run this)" },
  args: {},
  async run() {
    await serveMcp();
  },
});
