/**
 * @module gateway/ingress
 * Telegram -> agent: long-polls `getUpdates` and turns each text message of
 * an allowed chat into a `user.message` frame posted to aegisd (which wakes
 * the agent instance). Updates are handled one at a time, in order, and the
 * offset is persisted only after aegisd accepted the frame, so a crash or
 * restart neither loses a message nor sends one twice. While aegisd is
 * unreachable the same update is retried with backoff; a permanent refusal
 * (4xx, e.g. an unknown instance) is logged and told to the user instead.
 *
 * `/cancel` (or `/stop`) sends `control.cancel` for the chat's session.
 */
import { TETHER_VERSION, type TetherIngress, type TetherUser } from "../api/schema/tether.ts";
import { AegisApiError, type AegisTetherClient } from "./aegis-client.ts";
import { chatAllowed, type GatewayConfig } from "./config.ts";
import { describeError, type GatewayLog } from "./log.ts";
import type { GatewayState } from "./state.ts";
import type { TelegramApi, TgMessage, TgUpdate } from "./telegram.ts";
import type { TypingIndicator } from "./typing.ts";

/** The tether channel name of Telegram sessions. */
export const TELEGRAM_CHANNEL = "telegram";

/** Everything the poll loop uses. */
export interface IngressDeps {
  config: Pick<GatewayConfig, "allowedChats" | "pollTimeoutSec">;
  telegram: TelegramApi;
  aegis: AegisTetherClient;
  state: GatewayState;
  typing: TypingIndicator;
  log: GatewayLog;
  /** Longest pause between retries (ms). */
  maxBackoffMs?: number;
}

/** The user identity of a Telegram message, for the `[name]: ` prefix. */
export function tetherUser(msg: TgMessage): TetherUser | undefined {
  const from = msg.from;
  if (!from) return undefined;
  const user: TetherUser = { id: String(from.id) };
  if (from.username) user.username = from.username;
  const name = [from.first_name, from.last_name].filter((s) => s && s.trim() !== "").join(" ");
  if (name) user.name = name;
  return user;
}

/**
 * The frame for a Telegram message (undefined for messages without text).
 * Its `msg_id` is derived from the chat and message ids, so re-posting the
 * same Telegram message after a crash carries the same id (the agent answers
 * a message id once).
 */
export function frameFor(msg: TgMessage): TetherIngress | undefined {
  const session = { channel: TELEGRAM_CHANNEL, id: String(msg.chat.id) };
  const msg_id = `tg-${msg.chat.id}-${msg.message_id}`;
  const text = msg.text?.trim();
  if (!text) return undefined;
  if (/^\/(cancel|stop)(@\w+)?$/i.test(text)) return { v: TETHER_VERSION, type: "control.cancel", session, msg_id, payload: {} };
  const user = tetherUser(msg);
  return { v: TETHER_VERSION, type: "user.message", session, msg_id, payload: user ? { text: msg.text as string, user } : { text: msg.text as string } };
}

/** The long-poll loop. */
export class TelegramIngress {
  constructor(private readonly deps: IngressDeps) {}

  /** Poll until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    let backoff = 500;
    while (!signal.aborted) {
      let updates: TgUpdate[];
      try {
        updates = await deps.telegram.getUpdates(deps.state.data.telegram_offset, deps.config.pollTimeoutSec, signal);
        backoff = 500;
      } catch (err) {
        if (signal.aborted) return;
        deps.log.warn(`getUpdates failed: ${describeError(err)}; retrying in ${backoff} ms`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, deps.maxBackoffMs ?? 30_000);
        continue;
      }
      for (const update of updates) {
        if (update.update_id < deps.state.data.telegram_offset) continue;
        const handled = await this.handle(update, signal);
        if (!handled) return; // Stopping: the update stays unconfirmed and is fetched again next start.
        deps.state.data.telegram_offset = update.update_id + 1;
        deps.state.save();
      }
    }
  }

  /** Deliver one update; false only when stopped before it was delivered. */
  private async handle(update: TgUpdate, signal: AbortSignal): Promise<boolean> {
    const { deps } = this;
    const msg = update.message;
    if (!msg) return true;
    const chat = String(msg.chat.id);
    if (!chatAllowed(deps.config, chat)) {
      deps.log.info(`ignoring a message from chat ${chat} (not in allowed_chats; add "${chat}" to telegram.allowed_chats to allow it)`);
      return true;
    }
    // Egress may message this chat from now on (egress.ts): it wrote to the gateway itself.
    deps.state.sawChat(chat);
    const frame = frameFor(msg);
    if (!frame) {
      deps.log.info(`ignoring a message without text in chat ${chat}`);
      return true;
    }
    if (frame.type === "user.message") deps.typing.start(chat);
    let backoff = 250;
    for (;;) {
      try {
        const accepted = await deps.aegis.postFrame(frame);
        if (frame.type === "user.message") deps.state.remember(accepted.msg_id, { chat_id: chat, message_id: msg.message_id });
        deps.log.info(`chat ${chat}: ${frame.type} ${accepted.msg_id} accepted (seq ${accepted.seq})`);
        return true;
      } catch (err) {
        if (err instanceof AegisApiError && !err.transient) {
          deps.log.error(`chat ${chat}: ${describeError(err)}; the message is dropped`);
          deps.typing.stop(chat);
          await deps.telegram.sendMessage(chat, `⚠️ Could not deliver your message to the agent: ${err.message}`, msg.message_id).catch((e: unknown) => {
            deps.log.error(`chat ${chat}: could not report the failure: ${describeError(e)}`);
          });
          return true;
        }
        if (signal.aborted) return false;
        deps.log.warn(`chat ${chat}: aegisd did not take the message (${describeError(err)}); retrying in ${backoff} ms`);
        await sleep(backoff, signal);
        if (signal.aborted) return false;
        backoff = Math.min(backoff * 2, deps.maxBackoffMs ?? 30_000);
      }
    }
  }
}

/** Sleep that ends early (without error) when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
