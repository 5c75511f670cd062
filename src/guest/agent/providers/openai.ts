/**
 * @module guest/agent/providers/openai
 * OpenAI chat completions with `stream: true`: `POST {base}/chat/completions`,
 * answered by SSE `data: {chunk}` lines whose `choices[0].delta.content`
 * carries the text, ended by `data: [DONE]`. A mid-stream `{"error": ...}`
 * chunk or a body that ends before `[DONE]` (and without a `finish_reason`)
 * is an error.
 */
import { postSse } from "./http.ts";
import { type ChatProvider, type ChatRequest, ProviderError, type StreamOptions } from "./types.ts";

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
  choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[];
  error?: { message?: unknown; type?: unknown; code?: unknown };
}

/** The OpenAI provider. */
export class OpenAiProvider implements ChatProvider {
  readonly label = "OpenAI" as const;
  readonly model: string;
  constructor(private readonly opts: OpenAiOptions) {
    this.model = opts.model;
  }

  async stream(req: ChatRequest, { signal, onText }: StreamOptions): Promise<void> {
    const events = postSse({
      label: this.label,
      url: `${this.opts.baseUrl}/chat/completions`,
      headers: { authorization: `Bearer ${this.opts.apiKey}` },
      body: {
        model: this.model,
        stream: true,
        messages: [{ role: "system", content: req.system }, ...req.messages],
      },
      signal,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      idleTimeoutMs: this.opts.idleTimeoutMs,
    });
    let finished = false;
    for await (const ev of events) {
      const data = ev.data.trim();
      if (data === "[DONE]") return;
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
      if (typeof choice?.finish_reason === "string") finished = true;
    }
    if (!finished) throw new ProviderError("stream_interrupted", "OpenAI stream ended before [DONE]", true);
  }
}
