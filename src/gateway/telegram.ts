/**
 * @module gateway/telegram
 * A small Telegram Bot API client: `POST {base}/bot{token}/{method}` with a
 * JSON body, answers `{"ok":true,"result":...}` or
 * `{"ok":false,"error_code","description","parameters":{"retry_after"}}`.
 * Flood control (429) waits `retry_after`; 5xx and network failures retry
 * with exponential backoff; everything else is a {@link TelegramError}.
 * The token is part of the URL only; error messages name the method, never
 * the URL.
 */
import { describeError } from "./log.ts";

/** The Bot API's own limit on one message's text. */
export const TELEGRAM_TEXT_LIMIT = 4096;

/** Longest wait for one ordinary Bot API call (long polls get their poll timeout on top). */
export const CALL_TIMEOUT_MS = 30_000;

/** A Bot API failure. */
export class TelegramError extends Error {
  override readonly name = "TelegramError";
  constructor(
    readonly method: string,
    readonly errorCode: number,
    readonly description: string,
    readonly retryAfterSec?: number,
  ) {
    super(`Telegram ${method} failed (${errorCode}): ${description}`);
  }
  /** Worth retrying later. */
  get transient(): boolean {
    return this.errorCode === 429 || this.errorCode >= 500 || this.errorCode === 0;
  }
}

/** The parts of a Telegram `User` the gateway uses. */
export interface TgUser {
  id: number;
  is_bot?: boolean;
  first_name?: string;
  last_name?: string;
  username?: string;
}

/** The parts of a Telegram `Message` the gateway uses. */
export interface TgMessage {
  message_id: number;
  date?: number;
  chat: { id: number; type?: string; title?: string; username?: string };
  from?: TgUser;
  text?: string;
}

/** The parts of a Telegram `Update` the gateway uses. */
export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  [other: string]: unknown;
}

/** Options of {@link TelegramApi}. */
export interface TelegramApiOptions {
  token: string;
  baseUrl: string;
  /** Tries per call for transient failures (default 5). */
  maxTries?: number;
  /** First backoff step in ms (default 500). */
  backoffMs?: number;
  /** Longest flood-control wait honoured before giving up (default 120 s). */
  maxRetryAfterSec?: number;
  /** Told about each retry. */
  onRetry?: (method: string, err: TelegramError, delayMs: number) => void;
}

/** The Bot API methods the gateway calls. */
export class TelegramApi {
  constructor(private readonly opts: TelegramApiOptions) {}

  /**
   * Call a method once, without retries. `timeoutMs` bounds the whole call
   * (a half-open connection must not stall the gateway); expiring counts as a
   * network error.
   */
  async callOnce<T>(method: string, params: Record<string, unknown>, signal?: AbortSignal, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.opts.baseUrl}/bot${this.opts.token}/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(params),
        signal: combined,
      });
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      const why = timeout.aborted ? `no answer within ${timeoutMs} ms` : describeError(err);
      throw new TelegramError(method, 0, `network error: ${why}`);
    }
    let body: { ok?: boolean; result?: unknown; error_code?: number; description?: string; parameters?: { retry_after?: number } };
    try {
      body = JSON.parse(text);
    } catch {
      // Not the Bot API's JSON (a proxy error page): report the HTTP status instead.
      throw new TelegramError(method, res.status >= 400 ? res.status : 502, `unexpected non-JSON answer (HTTP ${res.status})`);
    }
    if (body.ok === true) return body.result as T;
    throw new TelegramError(method, body.error_code ?? res.status, body.description ?? `HTTP ${res.status}`, body.parameters?.retry_after);
  }

  /** Call a method, retrying flood control, 5xx and network failures. */
  async call<T>(method: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    const maxTries = this.opts.maxTries ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.callOnce<T>(method, params, signal);
      } catch (err) {
        if (!(err instanceof TelegramError) || !err.transient || attempt >= maxTries || signal?.aborted) throw err;
        if (err.retryAfterSec !== undefined && err.retryAfterSec > (this.opts.maxRetryAfterSec ?? 120)) throw err;
        const delay = err.retryAfterSec !== undefined ? err.retryAfterSec * 1000 : (this.opts.backoffMs ?? 500) * 2 ** (attempt - 1);
        this.opts.onRetry?.(method, err, delay);
        await Bun.sleep(delay);
      }
    }
  }

  /** `getMe`: the bot's own user (validates the token). */
  getMe(): Promise<TgUser> {
    return this.call<TgUser>("getMe", {});
  }

  /** One long poll (no retries: the poll loop backs off itself). */
  getUpdates(offset: number, timeoutSec: number, signal: AbortSignal): Promise<TgUpdate[]> {
    return this.callOnce<TgUpdate[]>("getUpdates", { offset, timeout: timeoutSec, allowed_updates: ["message"] }, signal, timeoutSec * 1000 + CALL_TIMEOUT_MS);
  }

  /** `sendMessage`, optionally as a reply. */
  sendMessage(chatId: string, text: string, replyTo?: number): Promise<TgMessage> {
    const params: Record<string, unknown> = { chat_id: chatParam(chatId), text };
    if (replyTo !== undefined) params.reply_parameters = { message_id: replyTo, allow_sending_without_reply: true };
    return this.call<TgMessage>("sendMessage", params);
  }

  /** `editMessageText`. */
  editMessageText(chatId: string, messageId: number, text: string): Promise<TgMessage | true> {
    return this.call<TgMessage | true>("editMessageText", { chat_id: chatParam(chatId), message_id: messageId, text });
  }

  /** `sendChatAction` (`typing`). */
  sendChatAction(chatId: string, action = "typing"): Promise<true> {
    return this.call<true>("sendChatAction", { chat_id: chatParam(chatId), action });
  }
}

/** Numeric chat ids go out as numbers, `@channel` names as strings. */
function chatParam(chatId: string): number | string {
  return /^-?\d+$/.test(chatId) ? Number(chatId) : chatId;
}

/** True for the harmless "message is not modified" answer to an edit with unchanged text. */
export function isNotModified(err: unknown): boolean {
  return err instanceof TelegramError && err.errorCode === 400 && err.description.includes("message is not modified");
}
