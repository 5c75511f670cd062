/**
 * @module gateway/egress
 * Agent -> Telegram: follows `GET /v1/instances/{id}/tether/stream?after_seq=N`
 * and renders the frames of `telegram` sessions. After each frame its `seq`
 * is persisted (with the renders in progress), so when the gateway or aegisd
 * restarts the stream resumes exactly after the last frame handled. A broken
 * stream reconnects with backoff (250 ms doubling to 10 s, reset by traffic).
 *
 * - `status.presence` thinking/typing -> typing indicator on; idle -> off
 * - `assistant.delta` -> the answer's {@link ReplyRenderer}
 * - `assistant.done` -> final render, typing off, render state dropped
 * - `event.ack` and frames of other channels -> nothing
 *
 * Answers are keyed by `reply_to` (the user message's `msg_id`), falling back
 * to the session when the agent does not set it.
 *
 * The guest is not trusted with where the bot speaks: the chat is the frame's
 * `session.id`, which the agent writes. Frames go out only to chats that are in
 * `allowed_chats` now and have written to this gateway (state.ts `chats`);
 * anything else is dropped and summarised in the log (drop-log.ts), so an
 * agent can answer the people who talk to it but cannot start conversations.
 *
 * The render state is bounded too: at most {@link MAX_RENDERS} answers at a
 * time (streaming or finishing; a new one evicts the least recently updated
 * streaming answer, which stays as last shown), an answer not updated for
 * {@link RENDER_IDLE_MS} is dropped, and an answer's text is cut at
 * {@link MAX_ANSWER_CHARS} (renderer.ts).
 */
import type { TetherError, TetherFrame } from "../api/schema/tether.ts";
import type { AegisTetherClient } from "./aegis-client.ts";
import { chatAllowed, type GatewayConfig } from "./config.ts";
import { DropLog } from "./drop-log.ts";
import { TELEGRAM_CHANNEL, sleep } from "./ingress.ts";
import { describeError, type GatewayLog } from "./log.ts";
import { type RenderApi, ReplyRenderer } from "./renderer.ts";
import type { GatewayState, RenderSnapshot } from "./state.ts";
import type { TypingIndicator } from "./typing.ts";

/** On a fresh start, replayed frames older than this are not rendered (2 minutes). */
export const FRESH_REPLAY_WINDOW_MS = 120_000;
/** Most answers rendered at once (streaming plus finishing). */
export const MAX_RENDERS = 32;
/** An answer with no delta for this long is dropped (10 minutes). */
export const RENDER_IDLE_MS = 600_000;

/** Everything the follower uses. */
export interface EgressDeps {
  /** Which chats may be messaged at all (and only once they wrote to the gateway). */
  config: Pick<GatewayConfig, "allowedChats">;
  aegis: AegisTetherClient;
  api: RenderApi;
  state: GatewayState;
  typing: TypingIndicator;
  log: GatewayLog;
  /** Minimum interval between edits of one answer (spec: 1 s). */
  throttleMs: number;
  maxBackoffMs?: number;
}

/** The stream follower and renderer registry. */
export class TetherEgress {
  /** Answers still streaming, by key. */
  private readonly renders = new Map<string, ReplyRenderer>();
  /** Answers whose final render is on its way to Telegram. */
  private readonly closing = new Map<string, ReplyRenderer>();
  private readonly finishing = new Set<Promise<void>>();
  /**
   * Without a saved stream position, the replay may hold answers a previous
   * gateway (whose state was lost) already delivered; frames older than this
   * are skipped rather than sent to Telegram a second time.
   */
  private readonly skipBefore: number | undefined;
  private readonly drops: DropLog;

  constructor(private readonly deps: EgressDeps) {
    this.skipBefore = deps.state.fresh ? Date.now() - FRESH_REPLAY_WINDOW_MS : undefined;
    this.drops = new DropLog(deps.log);
    const restored = Object.entries(deps.state.data.renders)
      .filter(([, snap]) => snap.finished || (snap.updated_at ?? 0) >= Date.now() - RENDER_IDLE_MS)
      .filter(([, snap]) => this.mayMessage(snap.chat_id))
      .slice(-MAX_RENDERS);
    for (const [key, snap] of restored) {
      const r = this.newRenderer(key, snap.chat_id, snap.reply_to_message_id, snap);
      if (snap.finished) this.finish(key, r, snap.text);
      else this.renders.set(key, r);
    }
  }

  /** Follow the stream until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    let backoff = 250;
    while (!signal.aborted) {
      try {
        for await (const frame of deps.aegis.stream(deps.state.data.tether_seq, signal)) {
          backoff = 250;
          if (frame.seq <= deps.state.data.tether_seq) continue; // Replayed twice by a racing reconnect.
          if (this.skipBefore === undefined || Date.parse(frame.ts) >= this.skipBefore) this.handle(frame);
          deps.state.data.tether_seq = frame.seq;
          this.persist();
        }
        if (signal.aborted) return;
        deps.log.warn(`tether stream ended; reconnecting in ${backoff} ms`);
      } catch (err) {
        if (signal.aborted) return;
        deps.log.warn(`tether stream failed: ${describeError(err)}; reconnecting in ${backoff} ms`);
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, deps.maxBackoffMs ?? 10_000);
    }
  }

  /** Resolves when every final render started so far has reached Telegram. */
  async settled(): Promise<void> {
    await Promise.all([...this.finishing]);
  }

  private persist(): void {
    const renders: Record<string, RenderSnapshot> = {};
    for (const [key, r] of this.closing) renders[key] = r.snapshot();
    for (const [key, r] of this.renders) renders[key] = r.snapshot();
    this.deps.state.data.renders = renders;
    this.deps.state.save();
  }

  private newRenderer(key: string, chatId: string, replyTo: number | undefined, snap?: RenderSnapshot): ReplyRenderer {
    return new ReplyRenderer(
      this.deps.api,
      chatId,
      replyTo,
      {
        throttleMs: this.deps.throttleMs,
        onError: (err) => this.deps.log.error(`chat ${chatId}: rendering answer ${key}: ${describeError(err)}`),
        onChange: () => this.persist(),
      },
      snap,
    );
  }

  /** True when the bot may message `chat`: allowed now, and it wrote to the gateway. */
  private mayMessage(chat: string): boolean {
    return chatAllowed(this.deps.config, chat) && this.deps.state.knowsChat(chat);
  }

  /** The renderer for a frame's answer, or undefined when no slot is free (the frame is dropped). */
  private rendererFor(frame: TetherFrame): ReplyRenderer | undefined {
    const key = frame.reply_to ?? `session:${frame.session.id}`;
    let r = this.renders.get(key);
    if (r) {
      // Map order is the LRU order: the most recently updated answer goes last.
      this.renders.delete(key);
      this.renders.set(key, r);
      return r;
    }
    this.expireIdle();
    while (this.renders.size + this.closing.size >= MAX_RENDERS) {
      const oldest = this.renders.keys().next();
      if (oldest.done) {
        this.drops.note(frame.session.id, `${MAX_RENDERS} answers are already being sent`);
        return undefined;
      }
      this.deps.log.warn(`more than ${MAX_RENDERS} answers at once; no longer updating answer ${JSON.stringify(oldest.value.slice(0, 64))} (it stays as last shown)`);
      this.renders.delete(oldest.value);
    }
    const origin = frame.reply_to ? this.deps.state.data.replies[frame.reply_to] : undefined;
    r = this.newRenderer(key, frame.session.id, origin?.chat_id === frame.session.id ? origin.message_id : undefined);
    this.renders.set(key, r);
    return r;
  }

  /** Drop streaming answers that saw no delta for {@link RENDER_IDLE_MS} (the agent gave up on them). */
  private expireIdle(): void {
    const cutoff = Date.now() - RENDER_IDLE_MS;
    for (const [key, r] of this.renders) {
      if (r.updatedAt >= cutoff) break; // LRU order: the rest are fresher.
      this.renders.delete(key);
    }
  }

  /** Send the final render; the answer stays in the persisted state until Telegram shows it. */
  private finish(key: string, r: ReplyRenderer, text: string, error?: TetherError): void {
    this.closing.set(key, r);
    const p = r.done(text, error).then(() => {
      this.closing.delete(key);
      this.finishing.delete(p);
      this.persist();
    });
    this.finishing.add(p);
  }

  private handle(frame: TetherFrame): void {
    if (frame.session.channel !== TELEGRAM_CHANNEL) return;
    const chat = frame.session.id;
    if (frame.type !== "status.presence" && frame.type !== "assistant.delta" && frame.type !== "assistant.done") return; // event.ack, host -> guest frames.
    if (!this.mayMessage(chat)) {
      const why = chatAllowed(this.deps.config, chat) ? "it never wrote to this gateway (the agent may only answer)" : "it is not in telegram.allowed_chats";
      this.drops.note(chat, why);
      return;
    }
    switch (frame.type) {
      case "status.presence":
        if (frame.payload.state === "idle") {
          if (![...this.renders.values()].some((r) => r.chatId === chat && !r.isFinished)) this.deps.typing.stop(chat);
        } else {
          this.deps.typing.start(chat);
        }
        return;
      case "assistant.delta":
        this.rendererFor(frame)?.delta(frame.payload.text);
        return;
      case "assistant.done": {
        const key = frame.reply_to ?? `session:${frame.session.id}`;
        const r = this.rendererFor(frame);
        if (!r) return;
        this.renders.delete(key);
        if (![...this.renders.values()].some((x) => x.chatId === chat)) this.deps.typing.stop(chat);
        this.finish(key, r, frame.payload.text, frame.payload.error);
        return;
      }
    }
  }
}
