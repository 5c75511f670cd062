/**
 * @module gateway/renderer
 * Renders one streamed answer into Telegram messages (spec "Streaming UX"):
 *
 * - the first `assistant.delta` -> `sendMessage`, as a reply to the user's message;
 * - later deltas -> `editMessageText`, at most once per `throttleMs` (1 s),
 *   coalescing everything that arrived in between into one edit;
 * - `assistant.done` -> a final edit with the complete text (or an error note),
 *   also respecting the throttle.
 *
 * Text past Telegram's 4096-character limit continues in further messages
 * (see split.ts); each message is only edited when its own piece changed.
 * All Bot API calls of one answer run one at a time, in order. An answer is
 * cut at {@link MAX_ANSWER_CHARS} (16 messages) with a note: the text comes
 * from the guest and is kept in memory and in the state file.
 */
import type { TetherError } from "../api/schema/tether.ts";
import type { RenderSnapshot } from "./state.ts";
import { splitMessage } from "./split.ts";
import { isNotModified } from "./telegram.ts";

/** Longest answer rendered (16 Telegram messages); the rest is cut with a note. */
export const MAX_ANSWER_CHARS = 16 * 4096;
const CUT_NOTE = "\n\n(answer truncated)";

/** `text` cut to {@link MAX_ANSWER_CHARS} (note included) when longer. */
export function capAnswer(text: string, max = MAX_ANSWER_CHARS): string {
  return text.length <= max ? text : text.slice(0, max - CUT_NOTE.length) + CUT_NOTE;
}

/** The Bot API calls a renderer makes. */
export interface RenderApi {
  sendMessage(chatId: string, text: string, replyTo?: number): Promise<{ message_id: number }>;
  editMessageText(chatId: string, messageId: number, text: string): Promise<unknown>;
}

/** Renderer settings. */
export interface RendererOptions {
  throttleMs: number;
  limit?: number;
  /** Told when a Bot API call failed for good (the renderer carries on with later text). */
  onError: (err: unknown) => void;
  /** Told after every change worth persisting. */
  onChange?: () => void;
}

/** The text shown for a finished answer. */
export function finalText(text: string, error: TetherError | undefined): string {
  if (!error) return text.trim() === "" ? "(empty response)" : text;
  if (error.code === "cancelled") return text ? `${text}\n\n(cancelled)` : "(cancelled)";
  const note = error.message.length > 500 ? `${error.message.slice(0, 500)}…` : error.message;
  return text ? `${text}\n\n⚠️ ${note}` : `⚠️ The agent could not answer: ${note}`;
}

/** One answer being rendered. */
export class ReplyRenderer {
  private text: string;
  private readonly messageIds: number[];
  private readonly shown: string[];
  private chain: Promise<void> = Promise.resolve();
  private pending = false;
  private lastFlushAt = 0;
  private finished = false;
  /** When text last arrived (ms since the epoch), for the idle expiry in egress.ts. */
  updatedAt: number;

  constructor(
    private readonly api: RenderApi,
    readonly chatId: string,
    private readonly replyTo: number | undefined,
    private readonly opts: RendererOptions,
    restored?: RenderSnapshot,
  ) {
    this.text = restored?.text ?? "";
    this.messageIds = [...(restored?.message_ids ?? [])];
    this.shown = [...(restored?.shown ?? [])];
    this.updatedAt = restored?.updated_at ?? Date.now();
  }

  /** Append streamed text. */
  delta(text: string): void {
    if (this.finished || text === "") return;
    this.updatedAt = Date.now();
    if (this.text.length >= MAX_ANSWER_CHARS) return; // Already cut; the rest is not kept.
    this.text = capAnswer(this.text + text);
    this.opts.onChange?.();
    if (this.pending) return;
    this.pending = true;
    void this.enqueue(async () => {
      await this.throttle();
      this.pending = false;
      if (!this.finished) await this.render(this.text);
    });
  }

  /** Finish with the complete text (or the partial text and an error); resolves when Telegram shows it. */
  done(text: string, error?: TetherError): Promise<void> {
    this.finished = true;
    this.updatedAt = Date.now();
    const full = capAnswer(finalText(text !== "" ? text : this.text, error));
    this.text = full;
    this.opts.onChange?.();
    return this.enqueue(async () => {
      await this.throttle();
      await this.render(full);
    });
  }

  /** Whether {@link done} was called. */
  get isFinished(): boolean {
    return this.finished;
  }

  /** Persistable state (for a restart mid-answer). */
  snapshot(): RenderSnapshot {
    const s: RenderSnapshot = { chat_id: this.chatId, text: this.text, message_ids: [...this.messageIds], shown: [...this.shown], updated_at: this.updatedAt };
    if (this.replyTo !== undefined) s.reply_to_message_id = this.replyTo;
    if (this.finished) s.finished = true;
    return s;
  }

  /** Wait until the last Bot API call is `throttleMs` old (no wait before the first message exists). */
  private async throttle(): Promise<void> {
    if (this.messageIds.length === 0) return;
    const wait = this.lastFlushAt + this.opts.throttleMs - Date.now();
    if (wait > 0) await Bun.sleep(wait);
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.chain.then(op).catch((err: unknown) => this.opts.onError(err));
    this.chain = next;
    return next;
  }

  /** Make Telegram show `text`: send missing pieces, edit changed ones. */
  private async render(text: string): Promise<void> {
    const pieces = splitMessage(text, this.opts.limit);
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (piece === "" || this.shown[i] === piece) continue;
      const id = this.messageIds[i];
      if (id === undefined) {
        const sent = await this.api.sendMessage(this.chatId, piece, i === 0 ? this.replyTo : this.messageIds[i - 1]);
        this.messageIds[i] = sent.message_id;
      } else {
        try {
          await this.api.editMessageText(this.chatId, id, piece);
        } catch (err) {
          if (!isNotModified(err)) throw err;
        }
      }
      this.shown[i] = piece;
      this.lastFlushAt = Date.now();
      this.opts.onChange?.();
    }
  }
}
