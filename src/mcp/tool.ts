/**
 * @module mcp/tool
 * One host MCP tool: name, what the model reads about it, its zod input
 * schema (strict: unknown arguments are refused, and the SDK publishes it
 * as the tool's JSON Schema) and a handler over the daemon link. Handler
 * failures become MCP tool errors with the daemon's message (result.ts).
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { z } from "zod";
import type { DaemonLink } from "./daemon-link.ts";
import { failure } from "./result.ts";

/** What a handler gets besides its arguments. */
export interface ToolContext {
  link: DaemonLink;
  /** Aborted when the client cancels the request. */
  signal: AbortSignal;
}

/** A tool definition. */
export interface HostTool<S extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  input: S;
  /** Only reads state (MCP `readOnlyHint`). */
  readOnly?: boolean;
  /** May destroy data (MCP `destructiveHint`). */
  destructive?: boolean;
  run(args: z.infer<S>, ctx: ToolContext): Promise<CallToolResult>;
}

/** Type helper that keeps each tool's argument type. */
export function defineTool<S extends z.ZodObject>(tool: HostTool<S>): HostTool<S> {
  return tool;
}

/** Register `tools` on `server`, each failure turned into a tool error. */
export function registerTools(server: McpServer, link: DaemonLink, tools: readonly HostTool[]): void {
  for (const tool of tools) {
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.input,
        annotations: { readOnlyHint: tool.readOnly === true, destructiveHint: tool.destructive === true, openWorldHint: false },
      },
      async (args: unknown, extra: { signal: AbortSignal }) => {
        try {
          return await tool.run(args as never, { link, signal: extra.signal });
        } catch (err) {
          return failure(err);
        }
      },
    );
  }
}
