/**
 * A local stand-in for the Anthropic messages API (`POST /v1/messages` with
 * `stream: true`), speaking the real wire format: named SSE events
 * `message_start`, `content_block_start`, `ping`, `content_block_delta`
 * (`text_delta`), `content_block_stop`, `message_delta`, `message_stop`, an
 * `error` event mid-stream, and Anthropic's JSON error bodies
 * (`{"type":"error","error":{"type","message"}}`). It checks the `x-api-key`
 * and `anthropic-version` headers. Scripted tool calls stream as `tool_use`
 * blocks with `input_json_delta` fragments and `stop_reason: "tool_use"`;
 * `requests` records every request body.
 */
import { argumentsText, echoChunks, type LlmReply, pause, type RecordedRequest, ReplyQueue } from "./llm-script.ts";
import { cutSoon, fragments, headerObject, quietError, streamingResponse } from "./stream.ts";

const ERROR_TYPES: Record<number, { type: string; message: string }> = {
  400: { type: "invalid_request_error", message: "messages: at least one message is required" },
  401: { type: "authentication_error", message: "invalid x-api-key" },
  429: { type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit" },
  500: { type: "api_error", message: "Internal server error" },
  529: { type: "overloaded_error", message: "Overloaded" },
};

/** The fake Anthropic server. */
export class FakeAnthropic {
  readonly replies = new ReplyQueue();
  readonly requests: RecordedRequest[] = [];
  /** When set, requests must carry this `x-api-key` or get a 401. */
  apiKey: string | undefined;
  private readonly server: ReturnType<typeof Bun.serve>;

  constructor(opts: { apiKey?: string } = {}) {
    this.apiKey = opts.apiKey;
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, error: quietError, fetch: (req) => this.handle(req) });
  }

  /** Base URL to use as `ANTHROPIC_BASE_URL` (without `/v1`). */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** Stop the server. */
  stop(): void {
    this.server.stop(true);
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = await req.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    this.requests.push({ method: req.method, path: url.pathname, headers: headerObject(req.headers), body, at: Date.now() });
    if (req.method !== "POST" || url.pathname !== "/v1/messages") return errorBody(404, "not_found_error", "Not found");
    if (this.apiKey !== undefined && req.headers.get("x-api-key") !== this.apiKey) return errorFor(401);
    if (!req.headers.get("anthropic-version")) return errorBody(400, "invalid_request_error", "anthropic-version: header is required");
    if (typeof body?.max_tokens !== "number") return errorBody(400, "invalid_request_error", "max_tokens: Field required");
    const reply = this.replies.next();
    await pause(reply.headerDelayMs);
    if (reply.status) return errorFor(reply.status, reply);
    const messages: { role: string; content: string }[] = Array.isArray(body?.messages) ? body.messages : [];
    const lastUser = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    return sseReply(reply.chunks ?? (reply.toolCalls ? [] : echoChunks(String(lastUser))), reply, String(body?.model ?? "claude-sonnet-4-5"));
  }
}

function errorBody(status: number, type: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ type: "error", error: { type, message } }, { status, headers: { "request-id": `req_${crypto.randomUUID()}`, ...headers } });
}

function errorFor(status: number, reply: LlmReply = {}): Response {
  const e = ERROR_TYPES[status] ?? ERROR_TYPES[500]!;
  const headers: Record<string, string> = {};
  if (reply.retryAfter !== undefined) headers["retry-after"] = reply.retryAfter;
  return errorBody(status, e.type, reply.errorMessage ?? e.message, headers);
}

function sseReply(chunks: string[], reply: LlmReply, model: string): Response {
  const eol = reply.crlf ? "\r\n" : "\n";
  const ev = (name: string, data: Record<string, unknown>) => `event: ${name}${eol}data: ${JSON.stringify({ type: name, ...data })}${eol}${eol}`;
  return streamingResponse(
    async (w) => {
      const send = (event: string) => {
        for (const piece of fragments(event, reply.fragment)) w.write(piece);
      };
      send(
        ev("message_start", {
          message: { id: `msg_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`, type: "message", role: "assistant", content: [], model, stop_reason: null, stop_sequence: null, usage: { input_tokens: 25, output_tokens: 1 } },
        }),
      );
      const calls = reply.toolCalls ?? [];
      const textBlock = chunks.length > 0 || calls.length === 0;
      if (textBlock) send(ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }));
      send(ev("ping", {}));
      for (let i = 0; i < chunks.length; i++) {
        if (i === reply.cutAfter) return cutSoon(w);
        if (i === reply.endAfter) return w.end();
        if (i === reply.hangAfter) {
          while (!w.cancelled) await Bun.sleep(20);
          return;
        }
        if (i === reply.streamErrorAfter) {
          send(ev("error", { error: { type: reply.errorType ?? "overloaded_error", message: reply.errorMessage ?? "Overloaded" } }));
          return w.end();
        }
        if (i > 0) await pause(reply.delayMs);
        if (w.cancelled) return;
        send(ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: chunks[i] } }));
      }
      if (chunks.length === reply.cutAfter) return cutSoon(w);
      if (chunks.length === reply.endAfter) return w.end();
      if (textBlock) send(ev("content_block_stop", { index: 0 }));
      for (let i = 0; i < calls.length; i++) {
        const call = calls[i]!;
        const index = textBlock ? i + 1 : i;
        send(ev("content_block_start", { index, content_block: { type: "tool_use", id: call.id ?? `toolu_${i}`, name: call.name, input: {} } }));
        send(ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: "" } }));
        for (const piece of fragments(argumentsText(call), reply.argsFragment ?? 7)) send(ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: piece } }));
        send(ev("content_block_stop", { index }));
      }
      send(ev("message_delta", { delta: { stop_reason: calls.length > 0 ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: 15 } }));
      send(ev("message_stop", {}));
    },
    { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": `req_${crypto.randomUUID()}` } },
  );
}
