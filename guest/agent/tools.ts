/**
 * @module guest/agent/tools
 * Tool calling for the agent (`AEGIS_AGENT_TOOLS=mcp`, set by the agent
 * kit): the agent starts `aegis-mcp-guest` (`AEGIS_MCP_COMMAND`, default
 * `/usr/bin/aegis-mcp-guest`) as a child process, connects to it with the MCP
 * SDK's Client over stdio and lists its tools once.
 *
 * How the LLM sees them: every MCP tool is offered under its MCP name
 * (`self_info`, `instance_spawn`, `instance_list`, `instance_stop`,
 * `expose_port`, `unexpose_port`, `keepalive_acquire`, `keepalive_release`)
 * with the MCP description and the MCP JSON input schema, unchanged. OpenAI
 * gets them as `tools: [{type: "function", function: {name, description,
 * parameters}}]`, Anthropic as `tools: [{name, description, input_schema}]`
 * (see providers/openai.ts and providers/anthropic.ts). A call's result is
 * the MCP result's text content (joined by newlines; `structuredContent` as
 * JSON when there is no text). A failure (MCP `isError`, the host refusing,
 * an unknown tool, arguments that are not a JSON object, a broken MCP child)
 * goes back to the model as the tool result with the error flag, so it can
 * read the host's message and hint and adapt; it never ends the answer.
 *
 * The child gets the agent's environment minus the LLM API keys, so it sees
 * `AEGIS_MCP_BRIDGE` when set.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { VERSION } from "../../src/api/version.ts";
import { errorMessage } from "./log.ts";
import { parseToolArguments, type ToolCall, type ToolResult, type ToolSpec } from "./providers/types.ts";

/** What the runtime needs to run tools. */
export interface ToolBox {
  /** The tools offered to the model. */
  readonly specs: ToolSpec[];
  /** Run one call; never rejects for a tool failure (that is an `isError` result), only for cancellation. */
  call(call: ToolCall, signal: AbortSignal): Promise<ToolResult>;
}

/** Variables the MCP child does not need to see. */
const HIDDEN_ENV = new Set(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]);

/** Longest tool output handed to the model, in characters (the rest is cut with a note). */
export const MAX_TOOL_RESULT_CHARS = 16_000;

interface McpContent {
  type: string;
  text?: string;
}

/** The text the model reads for an MCP `tools/call` result. */
export function resultText(result: { content?: unknown; structuredContent?: unknown }): string {
  const content = Array.isArray(result.content) ? (result.content as McpContent[]) : [];
  const texts = content.filter((c) => c.type === "text" && typeof c.text === "string").map((c) => c.text as string);
  let text = texts.length > 0 ? texts.join("\n") : result.structuredContent !== undefined ? JSON.stringify(result.structuredContent) : "";
  if (text.length > MAX_TOOL_RESULT_CHARS) text = `${text.slice(0, MAX_TOOL_RESULT_CHARS)}\n[output cut at ${MAX_TOOL_RESULT_CHARS} characters]`;
  return text === "" ? "(no output)" : text;
}

/** The MCP server child and its tool list. */
export class McpToolBox implements ToolBox {
  private constructor(
    private readonly client: Client,
    readonly specs: ToolSpec[],
  ) {}

  /** Start `command` (program and arguments), connect and list its tools. */
  static async start(command: string[], env: Record<string, string | undefined> = process.env): Promise<McpToolBox> {
    const [program, ...args] = command;
    if (!program) throw new Error("AEGIS_MCP_COMMAND is empty");
    const childEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) if (v !== undefined && !HIDDEN_ENV.has(k)) childEnv[k] = v;
    const transport = new StdioClientTransport({ command: program, args, env: childEnv, stderr: "inherit" });
    const client = new Client({ name: "aegis-agent", version: VERSION });
    try {
      await client.connect(transport);
      const { tools } = await client.listTools();
      const specs = tools.map((t) => ({ name: t.name, description: t.description ?? t.title ?? t.name, inputSchema: t.inputSchema as Record<string, unknown> }));
      return new McpToolBox(client, specs);
    } catch (err) {
      await client.close();
      throw new Error(`could not start the MCP server ${JSON.stringify(command.join(" "))}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async call(call: ToolCall, signal: AbortSignal): Promise<ToolResult> {
    const args = parseToolArguments(call.arguments);
    if (!args.ok) return { id: call.id, content: `tool ${call.name} was not called: ${args.message}`, isError: true };
    if (!this.specs.some((s) => s.name === call.name)) {
      return { id: call.id, content: `there is no tool named ${JSON.stringify(call.name)}; the tools are ${this.specs.map((s) => s.name).join(", ")}`, isError: true };
    }
    try {
      // The SDK's result type also admits the legacy `{toolResult}` shape; aegis-mcp-guest answers with content.
      const result = (await this.client.callTool({ name: call.name, arguments: args.value }, undefined, { signal })) as { content?: unknown; structuredContent?: unknown; isError?: unknown };
      return { id: call.id, content: resultText(result), isError: result.isError === true };
    } catch (err) {
      if (signal.aborted) throw err;
      return { id: call.id, content: `tool ${call.name} failed: ${errorMessage(err)}`, isError: true };
    }
  }

  /** Close the connection (the SDK ends the child). */
  async close(): Promise<void> {
    await this.client.close();
  }
}
