/**
 * A local stand-in for the OpenAI chat completions API (`POST
 * /v1/chat/completions` with `stream: true`), speaking the real wire format:
 * `data: {chat.completion.chunk}` SSE lines ending in `data: [DONE]`, and
 * OpenAI's JSON error bodies (`{"error":{"message","type","param","code"}}`)
 * with `retry-after` on 429. Replies are scripted with {@link LlmReply},
 * including tool calls (streamed `delta.tool_calls` fragments ending in
 * `finish_reason: "tool_calls"`); `requests` records every request body, so
 * tests can check the `tools` offered and the `role: "tool"` results sent back.
 */
import { argumentsText, echoChunks, type LlmReply, pause, type RecordedRequest, ReplyQueue } from "./llm-script.ts";
import { cutSoon, fragments, headerObject, quietError, streamingResponse } from "./stream.ts";

const ERROR_TYPES: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: "invalid_request_error", code: null, message: "Invalid request." },
  401: { type: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided: sk-wro****ong. You can find your API key at https://platform.openai.com/account/api-keys." },
  429: { type: "requests", code: "rate_limit_exceeded", message: "Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1." },
  500: { type: "server_error", code: null, message: "The server had an error while processing your request. Sorry about that!" },
  503: { type: "server_error", code: null, message: "The engine is currently overloaded, please try again later." },
};

/** The fake OpenAI server. */
export class FakeOpenAI {
  readonly replies = new ReplyQueue();
  readonly requests: RecordedRequest[] = [];
  /** When set, requests must carry `Authorization: Bearer <apiKey>` or get a 401. */
  apiKey: string | undefined;
  private readonly server: ReturnType<typeof Bun.serve>;

  /** `tls`: serve HTTPS with this certificate (the egress-secrets e2e plays api.openai.com with it). */
  constructor(opts: { apiKey?: string; tls?: { cert: string; key: string } } = {}) {
    this.apiKey = opts.apiKey;
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, error: quietError, fetch: (req) => this.handle(req), ...(opts.tls ? { tls: opts.tls } : {}) });
  }

  /** Base URL to use as `OPENAI_BASE_URL` (ends in `/v1`). */
  get baseUrl(): string {
    return `${this.server.protocol}://127.0.0.1:${this.server.port}/v1`;
  }

  /** The listening port. */
  get port(): number {
    return this.server.port!;
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
    if (req.method !== "POST" || url.pathname !== "/v1/chat/completions") return error(404, "Unknown request URL", "invalid_request_error", "unknown_url");
    if (this.apiKey !== undefined && req.headers.get("authorization") !== `Bearer ${this.apiKey}`) return errorFor(401);
    const reply = this.replies.next();
    await pause(reply.headerDelayMs);
    if (reply.status) return errorFor(reply.status, reply);
    const messages: { role: string; content: string }[] = Array.isArray(body?.messages) ? body.messages : [];
    const lastUser = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const chunks = reply.chunks ?? (reply.toolCalls ? [] : echoChunks(lastUser));
    return sseReply(chunks, reply, String(body?.model ?? "gpt-4o"));
  }
}

function error(status: number, message: string, type: string, code: string | null, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { message, type, param: null, code } }, { status, headers });
}

function errorFor(status: number, reply: LlmReply = {}): Response {
  const e = ERROR_TYPES[status] ?? ERROR_TYPES[500]!;
  const headers: Record<string, string> = {};
  if (reply.retryAfter !== undefined) headers["retry-after"] = reply.retryAfter;
  return error(status, reply.errorMessage ?? e.message, e.type, e.code, headers);
}

function sseReply(chunks: string[], reply: LlmReply, model: string): Response {
  const eol = reply.crlf ? "\r\n" : "\n";
  const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, system_fingerprint: "fp_fake", choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}${eol}${eol}`;
  return streamingResponse(
    async (w) => {
      const send = (event: string) => {
        for (const piece of fragments(event, reply.fragment)) w.write(piece);
      };
      send(chunk({ role: "assistant", content: "", refusal: null }, null));
      for (let i = 0; i < chunks.length; i++) {
        if (i === reply.cutAfter) return cutSoon(w);
        if (i === reply.endAfter) return w.end();
        if (i === reply.hangAfter) {
          while (!w.cancelled) await Bun.sleep(20);
          return;
        }
        if (i === reply.streamErrorAfter) {
          send(`data: ${JSON.stringify({ error: { message: reply.errorMessage ?? "The server had an error while processing your request.", type: "server_error", param: null, code: null } })}${eol}${eol}`);
          return w.end();
        }
        if (i > 0) await pause(reply.delayMs);
        if (w.cancelled) return;
        send(chunk({ content: chunks[i] }, null));
      }
      if (chunks.length === reply.cutAfter) return cutSoon(w);
      if (chunks.length === reply.endAfter) return w.end();
      const calls = reply.toolCalls ?? [];
      for (let i = 0; i < calls.length; i++) {
        const call = calls[i]!;
        send(chunk({ tool_calls: [{ index: i, id: call.id ?? `call_${i}`, type: "function", function: { name: call.name, arguments: "" } }] }, null));
        for (const piece of fragments(argumentsText(call), reply.argsFragment ?? 7)) send(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }, null));
      }
      send(chunk({}, calls.length > 0 ? "tool_calls" : "stop"));
      send(`data: [DONE]${eol}${eol}`);
    },
    { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": `req_${crypto.randomUUID()}` } },
  );
}
