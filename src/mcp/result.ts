/**
 * @module mcp/result
 * How the host MCP server shapes tool results: data as pretty JSON text plus
 * `structuredContent`, and every failure as an MCP tool error
 * (`isError: true`) whose text is the daemon's message with its remedy on a
 * `hint:` line, so the model reads the same sentence a CLI user would.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { DaemonNotRunning } from "../api/client.ts";
import { isAppError } from "../api/errors.ts";

/** A successful result carrying `data`; `text` replaces the JSON rendering when given. */
export function ok(data: Record<string, unknown>, text?: string): CallToolResult {
  return { content: [{ type: "text", text: text ?? JSON.stringify(data, null, 2) }], structuredContent: data };
}

/** Raised by tools for a bad request the daemon cannot see (size limits, encodings). */
export class ToolError extends Error {
  override name = "ToolError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** The text of a failure: message, then `hint: ...` when there is one. */
export function errorText(err: unknown): string {
  if (isAppError(err) || err instanceof ToolError) return err.hint ? `${err.message}\nhint: ${err.hint}` : err.message;
  if (err instanceof DaemonNotRunning) return `${err.message} (socket ${err.socket})`;
  return err instanceof Error ? err.message : String(err);
}

/** A tool error result. */
export function failure(err: unknown): CallToolResult {
  return { isError: true, content: [{ type: "text", text: errorText(err) }] };
}
