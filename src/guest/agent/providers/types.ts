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
 */

/** A conversation turn as sent to a provider. */
export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

/** One completion request. */
export interface ChatRequest {
  system: string;
  messages: ChatMessage[];
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
  stream(req: ChatRequest, opts: StreamOptions): Promise<void>;
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
