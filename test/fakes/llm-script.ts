/**
 * The reply script shared by the OpenAI and Anthropic fakes. Each request
 * takes the next queued script (or the default one) and the fake plays it in
 * that vendor's real wire format.
 */

/** How the fake answers one request. */
export interface LlmReply {
  /** The text, streamed as these pieces in order (default: the reply echoes the last user message). */
  chunks?: string[];
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

/** Milliseconds to wait; resolves immediately for 0 or undefined. */
export function pause(ms: number | undefined): Promise<void> {
  return ms ? Bun.sleep(ms) : Promise.resolve();
}
