/**
 * @module guest/agent/providers/anthropic
 * Anthropic messages with `stream: true`: `POST {base}/v1/messages` with
 * `x-api-key` and `anthropic-version: 2023-06-01`. The SSE stream is
 * `message_start`, then per content block `content_block_start`,
 * `content_block_delta` (text in `delta.text` when `delta.type` is
 * `text_delta`), `content_block_stop`, then `message_delta` and
 * `message_stop`; `ping` may appear anywhere and an `error` event
 * (`{"type":"error","error":{"type","message"}}`) ends the stream early.
 *
 * Tools: each {@link ToolSpec} is sent as `tools: [{name, description,
 * input_schema}]` with `input_schema` the tool's MCP JSON input schema. A
 * call arrives as a `content_block_start` whose block is `{type: "tool_use",
 * id, name, input: {}}`, its input as `input_json_delta` fragments
 * (`delta.partial_json`, concatenated), and the message ends with
 * `stop_reason: "tool_use"`. Earlier rounds are sent back as an assistant
 * message with the text and `tool_use` blocks, then a user message with one
 * `tool_result` block (`tool_use_id`, `content`, `is_error`) per call.
 */
import { postSse } from "./http.ts";
import {
  type ChatMessage,
  type ChatProvider,
  type ChatRequest,
  parseToolArguments,
  ProviderError,
  type StreamOptions,
  type StreamResult,
  type ToolCall,
  type ToolRound,
  type ToolSpec,
} from "./types.ts";

/** The API version header value this adapter speaks. */
export const ANTHROPIC_VERSION = "2023-06-01";

/** Settings of the Anthropic endpoint. */
export interface AnthropicOptions {
  apiKey: string;
  model: string;
  /** e.g. `https://api.anthropic.com` (no trailing slash, no `/v1`). */
  baseUrl: string;
  maxTokens: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * Anthropic wants the conversation to start with a user turn and merges
 * consecutive same-role turns; do both explicitly so a history with a failed
 * (unanswered) user turn still forms a valid request.
 */
export function anthropicMessages(messages: ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const m of messages) {
    if (out.length === 0 && m.role !== "user") continue;
    const last = out.at(-1);
    if (last && last.role === m.role) last.content = `${last.content}\n\n${m.content}`;
    else out.push({ ...m });
  }
  return out;
}

/**
 * Assembles the tool calls of one Anthropic stream: `tool_use` content
 * blocks by index, their input from `input_json_delta` fragments.
 */
export class AnthropicToolCalls {
  readonly #blocks = new Map<number, { id: string; name: string; json: string; input: unknown }>();

  /** Take one parsed stream event (anything but tool_use blocks and their deltas is ignored). */
  push(body: Record<string, any>): void {
    const index = typeof body.index === "number" ? body.index : 0;
    if (body.type === "content_block_start" && body.content_block?.type === "tool_use") {
      const b = body.content_block;
      this.#blocks.set(index, { id: String(b.id ?? ""), name: String(b.name ?? ""), json: "", input: b.input });
    } else if (body.type === "content_block_delta" && body.delta?.type === "input_json_delta" && typeof body.delta.partial_json === "string") {
      const block = this.#blocks.get(index);
      if (!block) throw new ProviderError("stream_interrupted", `Anthropic stream sent input_json_delta for block ${index}, which is not a tool_use block`, true);
      block.json += body.delta.partial_json;
    }
  }

  /** The calls in block order. */
  calls(): ToolCall[] {
    return [...this.#blocks.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, b]) => {
        if (b.name === "") throw new ProviderError("stream_interrupted", `Anthropic stream sent tool_use block ${index} without a name`, true);
        // Without deltas the start block's `input` is the whole input (`{}` for a tool without arguments).
        const args = b.json.trim() !== "" ? b.json : JSON.stringify(b.input ?? {});
        return { id: b.id || `toolu_${index}`, name: b.name, arguments: args };
      });
  }
}

/** The `tools` request field. */
export function anthropicTools(tools: ToolSpec[]): unknown[] {
  return tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.inputSchema }));
}

/** The messages that replay earlier tool rounds. */
export function anthropicRoundMessages(rounds: ToolRound[]): unknown[] {
  const out: unknown[] = [];
  for (const r of rounds) {
    const content: unknown[] = r.text === "" ? [] : [{ type: "text", text: r.text }];
    for (const c of r.calls) {
      const parsed = parseToolArguments(c.arguments);
      // Invalid arguments were answered with an error result; the replayed block still needs an object.
      content.push({ type: "tool_use", id: c.id, name: c.name, input: parsed.ok ? parsed.value : {} });
    }
    out.push({ role: "assistant", content });
    out.push({ role: "user", content: r.results.map((res) => ({ type: "tool_result", tool_use_id: res.id, content: res.content, is_error: res.isError })) });
  }
  return out;
}

/** The Anthropic provider. */
export class AnthropicProvider implements ChatProvider {
  readonly label = "Anthropic" as const;
  readonly model: string;
  constructor(private readonly opts: AnthropicOptions) {
    this.model = opts.model;
  }

  async stream(req: ChatRequest, { signal, onText }: StreamOptions): Promise<StreamResult> {
    const tools = req.tools ?? [];
    const events = postSse({
      label: this.label,
      url: `${this.opts.baseUrl}/v1/messages`,
      headers: { "x-api-key": this.opts.apiKey, "anthropic-version": ANTHROPIC_VERSION },
      body: {
        model: this.model,
        max_tokens: this.opts.maxTokens,
        stream: true,
        system: req.system,
        messages: [...anthropicMessages(req.messages), ...anthropicRoundMessages(req.rounds ?? [])],
        ...(tools.length > 0 ? { tools: anthropicTools(tools) } : {}),
      },
      signal,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      idleTimeoutMs: this.opts.idleTimeoutMs,
    });
    const calls = new AnthropicToolCalls();
    for await (const ev of events) {
      if (ev.event === "ping") continue;
      let body: Record<string, any>;
      try {
        body = JSON.parse(ev.data) as Record<string, any>;
      } catch (err) {
        throw new ProviderError("stream_interrupted", `Anthropic stream sent invalid JSON in '${ev.event}': ${(err as Error).message}`, true);
      }
      const type = typeof body.type === "string" ? body.type : ev.event;
      if (type === "error") {
        const kind = typeof body.error?.type === "string" ? body.error.type : "error";
        const msg = typeof body.error?.message === "string" ? body.error.message : ev.data;
        const overloaded = kind === "overloaded_error";
        throw new ProviderError(overloaded ? "overloaded" : "provider_error", `Anthropic stream error (${kind}): ${msg}`, overloaded);
      }
      calls.push({ ...body, type });
      if (type === "content_block_delta" && body.delta?.type === "text_delta" && typeof body.delta.text === "string") {
        if (body.delta.text.length > 0) onText(body.delta.text);
      } else if (type === "content_block_start" && body.content_block?.type === "text" && typeof body.content_block.text === "string") {
        if (body.content_block.text.length > 0) onText(body.content_block.text);
      } else if (type === "message_stop") {
        return { toolCalls: calls.calls() };
      }
    }
    throw new ProviderError("stream_interrupted", "Anthropic stream ended before message_stop", true);
  }
}
