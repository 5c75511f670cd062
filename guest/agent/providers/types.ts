/**
 * @module guest/agent/providers/types
 * The provider interface shared by the OpenAI and Anthropic adapters, and the
 * typed error every provider failure becomes. Error codes end up in
 * `assistant.done.error.code`, so they are stable strings:
 *
 * | code                 | cause                                         | retried |
 * |----------------------|-----------------------------------------------|---------|
 * | `no_api_key`         | neither `ANTHROPIC_API_KEY` nor `OPENAI_API_KEY` | no   |
 * | `unauthorized`       | HTTP 401/403                                  | no      |
 * | `bad_request`        | other HTTP 4xx                                | no      |
 * | `rate_limited`       | HTTP 429                                      | yes     |
 * | `upstream_error`     | HTTP 5xx (and Anthropic's 529)                | yes     |
 * | `overloaded`         | SSE error event `overloaded_error`            | yes     |
 * | `provider_error`     | any other SSE error event                     | no      |
 * | `network_error`      | connection refused/reset before any response  | yes     |
 * | `timeout`            | no response headers, or a silent stream       | yes     |
 * | `stream_interrupted` | stream ended before its end marker            | yes     |
 * | `cancelled`          | `control.cancel` (not a ProviderError)        | no      |
 *
 * "Retried" applies only while no text has been emitted for the request.
 *
 * Tool calling (AEGIS_AGENT_TOOLS=mcp, see ../tools.ts): a request may carry
 * `tools` (MCP name, description and JSON input schema, which each adapter
 * renders in its vendor's format) and the `rounds` of tool calls already made
 * for this user message (rendered as the vendor's assistant tool-call message
 * followed by the tool results). A stream that ends because the model asked
 * for tools resolves with those `toolCalls`; the runtime runs them and asks
 * again.
 */

/** A conversation turn as sent to a provider. */
export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

/** A tool the model may call, as `aegis-mcp-guest` lists it. */
export interface ToolSpec {
  /** The MCP tool name (e.g. `instance_spawn`), used unchanged as the function name. */
  name: string;
  description: string;
  /** The tool's JSON Schema for its arguments (an `{"type":"object",...}` schema). */
  inputSchema: Record<string, unknown>;
}

/** A tool call the model asked for, assembled from the stream. */
export interface ToolCall {
  /** The vendor's call id (`call_...` / `toolu_...`), echoed with the result. */
  id: string;
  name: string;
  /** The arguments as the model wrote them (a JSON text; `{}` when it sent none). */
  arguments: string;
}

/** What a tool call returned, as the model is shown it. */
export interface ToolResult {
  /** The {@link ToolCall.id} it answers. */
  id: string;
  /** The tool's text output, or the error message. */
  content: string;
  /** True when the tool failed or refused (MCP `isError`, unknown tool, bad arguments, transport failure). */
  isError: boolean;
}

/** One finished round: what the model said and called, and the results. */
export interface ToolRound {
  /** Text the model streamed before its calls in that round (may be empty). */
  text: string;
  calls: ToolCall[];
  results: ToolResult[];
}

/** One completion request. */
export interface ChatRequest {
  system: string;
  messages: ChatMessage[];
  /** Tools offered to the model; absent or empty means a plain chat request. */
  tools?: ToolSpec[];
  /** Tool rounds already made for the current user message, oldest first. */
  rounds?: ToolRound[];
}

/** How a stream ended. */
export interface StreamResult {
  /** The tool calls the model asked for (empty when it answered with text only). */
  toolCalls: ToolCall[];
}

/** Per-call options: cancellation and the text sink. */
export interface StreamOptions {
  signal: AbortSignal;
  /** Called with each non-empty chunk of generated text, in order. */
  onText: (text: string) => void;
}

/** A streaming chat provider. */
export interface ChatProvider {
  readonly label: "OpenAI" | "Anthropic";
  readonly model: string;
  /** Stream one completion; resolves at the provider's end marker, rejects with ProviderError or CancelledError. */
  stream(req: ChatRequest, opts: StreamOptions): Promise<StreamResult>;
}

/** A provider failure with a stable code and a human message (never containing the API key). */
export class ProviderError extends Error {
  override readonly name = "ProviderError";
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
    /** Server-requested delay before retrying (`retry-after`), in ms. */
    readonly retryAfterMs?: number,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The request was cancelled by `control.cancel` (or shutdown). */
export class CancelledError extends Error {
  override readonly name = "CancelledError";
  constructor(message = "cancelled") {
    super(message);
  }
}

/** A tool call's arguments parsed as the JSON object the tool takes, or why they are not one. */
export function parseToolArguments(raw: string): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return { ok: false, message: `the arguments are not valid JSON (${err.message}): ${raw.slice(0, 200)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, message: `the arguments must be a JSON object, got ${raw.slice(0, 200)}` };
  return { ok: true, value: value as Record<string, unknown> };
}
