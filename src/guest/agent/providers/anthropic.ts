/**
 * @module guest/agent/providers/anthropic
 * Anthropic messages with `stream: true`: `POST {base}/v1/messages` with
 * `x-api-key` and `anthropic-version: 2023-06-01`. The SSE stream is
 * `message_start`, then per content block `content_block_start`,
 * `content_block_delta` (text in `delta.text` when `delta.type` is
 * `text_delta`), `content_block_stop`, then `message_delta` and
 * `message_stop`; `ping` may appear anywhere and an `error` event
 * (`{"type":"error","error":{"type","message"}}`) ends the stream early.
 */
import { postSse } from "./http.ts";
import { type ChatMessage, type ChatProvider, type ChatRequest, ProviderError, type StreamOptions } from "./types.ts";

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

/** The Anthropic provider. */
export class AnthropicProvider implements ChatProvider {
  readonly label = "Anthropic" as const;
  readonly model: string;
  constructor(private readonly opts: AnthropicOptions) {
    this.model = opts.model;
  }

  async stream(req: ChatRequest, { signal, onText }: StreamOptions): Promise<void> {
    const events = postSse({
      label: this.label,
      url: `${this.opts.baseUrl}/v1/messages`,
      headers: { "x-api-key": this.opts.apiKey, "anthropic-version": ANTHROPIC_VERSION },
      body: {
        model: this.model,
        max_tokens: this.opts.maxTokens,
        stream: true,
        system: req.system,
        messages: anthropicMessages(req.messages),
      },
      signal,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      idleTimeoutMs: this.opts.idleTimeoutMs,
    });
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
      if (type === "content_block_delta" && body.delta?.type === "text_delta" && typeof body.delta.text === "string") {
        if (body.delta.text.length > 0) onText(body.delta.text);
      } else if (type === "content_block_start" && body.content_block?.type === "text" && typeof body.content_block.text === "string") {
        if (body.content_block.text.length > 0) onText(body.content_block.text);
      } else if (type === "message_stop") {
        return;
      }
    }
    throw new ProviderError("stream_interrupted", "Anthropic stream ended before message_stop", true);
  }
}
