/**
 * @module guest/agent/providers
 * Provider selection (Anthropic when its key is set, else OpenAI) and the
 * retry policy: up to `maxAttempts` tries for retryable failures (429, 5xx,
 * network, timeouts, broken streams), but only while no text has been
 * emitted, with exponential backoff that honours `retry-after`.
 */
import type { AgentConfig } from "../config.ts";
import { AnthropicProvider } from "./anthropic.ts";
import { OpenAiProvider } from "./openai.ts";
import { CancelledError, type ChatProvider, ProviderError } from "./types.ts";

export { CancelledError, ProviderError } from "./types.ts";
export type { ChatMessage, ChatProvider, ChatRequest, StreamResult, ToolCall, ToolResult, ToolRound, ToolSpec } from "./types.ts";

/** The provider for this configuration, or undefined when no API key is set. */
export function createProvider(config: AgentConfig): ChatProvider | undefined {
  if (!config.apiKey) return undefined;
  const common = { apiKey: config.apiKey, model: config.model, baseUrl: config.baseUrl, connectTimeoutMs: config.connectTimeoutMs, idleTimeoutMs: config.idleTimeoutMs };
  return config.provider === "anthropic" ? new AnthropicProvider({ ...common, maxTokens: config.maxTokens }) : new OpenAiProvider(common);
}

/** Longest wait between tries, whatever `retry-after` asks for. */
export const MAX_RETRY_DELAY_MS = 30_000;

/** Backoff before try `attempt + 1` (attempt counts from 1). */
export function retryDelayMs(err: ProviderError, attempt: number, baseMs: number): number {
  const backoff = baseMs * 2 ** (attempt - 1);
  return Math.min(MAX_RETRY_DELAY_MS, Math.max(err.retryAfterMs ?? 0, backoff));
}

/** Sleep that ends early with CancelledError when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CancelledError());
    const onAbort = () => {
      clearTimeout(t);
      reject(new CancelledError());
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of {@link withRetries}. */
export interface RetryOptions {
  maxAttempts: number;
  baseMs: number;
  signal: AbortSignal;
  /** True once any text reached the user; from then on nothing is retried. */
  emitted: () => boolean;
  /** Told about each retry (for the log). */
  onRetry?: (err: ProviderError, attempt: number, delayMs: number) => void;
}

/** Run `attempt` until it succeeds, fails for good, or the tries run out. */
export async function withRetries(attempt: (n: number) => Promise<void>, opts: RetryOptions): Promise<void> {
  for (let n = 1; ; n++) {
    try {
      await attempt(n);
      return;
    } catch (err) {
      const retry = err instanceof ProviderError && err.retryable && !opts.emitted() && n < opts.maxAttempts && !opts.signal.aborted;
      if (!retry) throw err;
      const delay = retryDelayMs(err, n, opts.baseMs);
      opts.onRetry?.(err, n, delay);
      await abortableSleep(delay, opts.signal);
    }
  }
}
