/**
 * @module guest/agent/providers/openai
 * OpenAI chat completions with `stream: true`: `POST {base}/chat/completions`,
 * answered by SSE `data: {chunk}` lines whose `choices[0].delta.content`
 * carries the text, ended by `data: [DONE]`. A mid-stream `{"error": ...}`
 * chunk or a body that ends before `[DONE]` (and without a `finish_reason`)
 * is an error.
 *
 * Tools: each {@link ToolSpec} is sent as
 * `tools: [{type: "function", function: {name, description, parameters}}]`
 * with `parameters` the tool's MCP JSON input schema. The model's calls
 * arrive as `choices[0].delta.tool_calls` fragments (`index`, then `id`,
 * `function.name` and `function.arguments` pieces to concatenate) and the
 * stream ends with `finish_reason: "tool_calls"`. Earlier rounds are sent back
 * as `{role: "assistant", content, tool_calls: [...]}` followed by one
 * `{role: "tool", tool_call_id, content}` per result (a failed call's content
 * starts with `error: `, OpenAI having no error flag).
 */
import { postSse } from "./http.ts";
import { type ChatProvider, type ChatRequest, ProviderError, type StreamOptions, type StreamResult, type ToolCall, type ToolRound, type ToolSpec } from "./types.ts";

/** Settings of one OpenAI-compatible endpoint. */
export interface OpenAiOptions {
  apiKey: string;
  model: string;
  /** e.g. `https://api.openai.com/v1` (no trailing slash). */
  baseUrl: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

interface ChunkShape {
  choices?: { delta?: { content?: unknown; tool_calls?: unknown }; finish_reason?: unknown }[];
  error?: { message?: unknown; type?: unknown; code?: unknown };
}

/** One streamed `delta.tool_calls[]` element. */
interface ToolCallDelta {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown };
}

/**
 * Assembles the tool calls of one OpenAI stream from `delta.tool_calls`
 * fragments: the first fragment of a call (by `index`) carries its `id` and
 * `function.name`, later ones more `function.arguments` text.
 */
export class OpenAiToolCalls {
  readonly #calls = new Map<number, { id: string; name: string; arguments: string }>();

  /** Take one chunk's `delta.tool_calls` (anything else is ignored). */
  push(deltas: unknown): void {
    if (!Array.isArray(deltas)) return;
    for (const d of deltas as ToolCallDelta[]) {
      const index = typeof d?.index === "number" ? d.index : 0;
      let call = this.#calls.get(index);
      if (!call) {
        call = { id: "", name: "", arguments: "" };
        this.#calls.set(index, call);
      }
      if (typeof d.id === "string" && d.id !== "") call.id = d.id;
      if (typeof d.function?.name === "string") call.name += d.function.name;
      if (typeof d.function?.arguments === "string") call.arguments += d.function.arguments;
    }
  }

  /** The calls in index order; a call without a name is a broken stream. */
  calls(): ToolCall[] {
    return [...this.#calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => {
        if (c.name === "") throw new ProviderError("stream_interrupted", `OpenAI stream sent tool call #${index} without a function name`, true);
        return { id: c.id || `call_${index}`, name: c.name, arguments: c.arguments.trim() === "" ? "{}" : c.arguments };
      });
  }
}

/** The `tools` request field. */
export function openAiTools(tools: ToolSpec[]): unknown[] {
  return tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.inputSchema } }));
}

/** The messages that replay earlier tool rounds. */
export function openAiRoundMessages(rounds: ToolRound[]): unknown[] {
  const out: unknown[] = [];
  for (const r of rounds) {
    out.push({
      role: "assistant",
      content: r.text === "" ? null : r.text,
      tool_calls: r.calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } })),
    });
    for (const res of r.results) out.push({ role: "tool", tool_call_id: res.id, content: res.isError ? `error: ${res.content}` : res.content });
  }
  return out;
}

/** The OpenAI provider. */
export class OpenAiProvider implements ChatProvider {
  readonly label = "OpenAI" as const;
  readonly model: string;
  constructor(private readonly opts: OpenAiOptions) {
    this.model = opts.model;
  }

  async stream(req: ChatRequest, { signal, onText }: StreamOptions): Promise<StreamResult> {
    const tools = req.tools ?? [];
    const events = postSse({
      label: this.label,
      url: `${this.opts.baseUrl}/chat/completions`,
      headers: { authorization: `Bearer ${this.opts.apiKey}` },
      body: {
        model: this.model,
        stream: true,
        messages: [{ role: "system", content: req.system }, ...req.messages, ...openAiRoundMessages(req.rounds ?? [])],
        ...(tools.length > 0 ? { tools: openAiTools(tools) } : {}),
      },
      signal,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      idleTimeoutMs: this.opts.idleTimeoutMs,
    });
    let finished = false;
    const calls = new OpenAiToolCalls();
    for await (const ev of events) {
      const data = ev.data.trim();
      if (data === "[DONE]") return { toolCalls: calls.calls() };
      let chunk: ChunkShape;
      try {
        chunk = JSON.parse(data) as ChunkShape;
      } catch (err) {
        throw new ProviderError("stream_interrupted", `OpenAI stream sent invalid JSON: ${(err as Error).message}`, !finished);
      }
      if (chunk.error) {
        const msg = typeof chunk.error.message === "string" ? chunk.error.message : JSON.stringify(chunk.error);
        throw new ProviderError("provider_error", `OpenAI stream error: ${msg}`);
      }
      const choice = chunk.choices?.[0];
      const content = choice?.delta?.content;
      if (typeof content === "string" && content.length > 0) onText(content);
      calls.push(choice?.delta?.tool_calls);
      if (typeof choice?.finish_reason === "string") finished = true;
    }
    if (!finished) throw new ProviderError("stream_interrupted", "OpenAI stream ended before [DONE]", true);
    return { toolCalls: calls.calls() };
  }
}
