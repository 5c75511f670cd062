/**
 * The reply script shared by the OpenAI and Anthropic fakes. Each request
 * takes the next queued script (or the default one) and the fake plays it in
 * that vendor's real wire format.
 */

/** A tool call the fake model makes. */
export interface ScriptedToolCall {
  /** Call id (default `call_<n>` / `toolu_<n>`). */
  id?: string;
  name: string;
  /** The arguments: an object (serialised) or raw JSON text (sent as is, even if invalid). */
  arguments: Record<string, unknown> | string;
}

/** How the fake answers one request. */
export interface LlmReply {
  /** The text, streamed as these pieces in order (default: the reply echoes the last user message, or nothing when `toolCalls` is set). */
  chunks?: string[];
  /**
   * After the text, ask for these tool calls in the vendor's wire format
   * (OpenAI `delta.tool_calls` fragments and finish_reason `tool_calls`;
   * Anthropic `tool_use` blocks with `input_json_delta` and stop_reason
   * `tool_use`), the arguments split into pieces of `argsFragment` characters.
   */
  toolCalls?: ScriptedToolCall[];
  /** Size of the argument pieces of `toolCalls` (default 7). */
  argsFragment?: number;
  /** Delay between text pieces, ms. */
  delayMs?: number;
  /** Delay before the response headers, ms. */
  headerDelayMs?: number;
  /** Answer with this HTTP status and the vendor's JSON error body instead of a stream. */
  status?: number;
  /** Error message for `status` or `streamErrorAfter`. */
  errorMessage?: string;
  /** Anthropic error type for a mid-stream error event (default `overloaded_error`). */
  errorType?: string;
  /** `retry-after` header value for an HTTP error. */
  retryAfter?: string;
  /** After this many pieces, end the body cleanly but without the end marker. */
  endAfter?: number;
  /** After this many pieces, reset the connection. */
  cutAfter?: number;
  /** After this many pieces, send the vendor's error event and end. */
  streamErrorAfter?: number;
  /** After this many pieces, go silent (connection left open). */
  hangAfter?: number;
  /** Use CRLF line endings. */
  crlf?: boolean;
  /** Write every event in fragments of this many characters. */
  fragment?: number;
}

/** A recorded request. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: any;
  at: number;
}

/** Queue of scripted replies with a default. */
export class ReplyQueue {
  private readonly queue: LlmReply[] = [];
  /** Used when the queue is empty. */
  fallback: LlmReply = {};

  /** Queue replies for the next requests, in order. */
  push(...replies: LlmReply[]): void {
    this.queue.push(...replies);
  }

  /** The reply for the next request. */
  next(): LlmReply {
    return this.queue.shift() ?? this.fallback;
  }
}

/** Default text pieces: an echo of the last user message, in three pieces. */
export function echoChunks(lastUser: string): string[] {
  return ["You said: ", lastUser.slice(0, Math.ceil(lastUser.length / 2)), lastUser.slice(Math.ceil(lastUser.length / 2))].filter((c) => c.length > 0);
}

/** A scripted call's arguments as JSON text. */
export function argumentsText(call: ScriptedToolCall): string {
  return typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments);
}

/** Milliseconds to wait; resolves immediately for 0 or undefined. */
export function pause(ms: number | undefined): Promise<void> {
  return ms ? Bun.sleep(ms) : Promise.resolve();
}
