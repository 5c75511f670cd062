/**
 * @module gateway/state
 * What the gateway must remember across restarts, in
 * `$AEGIS_HOME/data/gateway-state.json` (0600, replaced atomically):
 *
 * - `telegram_offset`: the next `getUpdates` offset (last handled update_id + 1),
 *   advanced only after an update was handed to aegisd, so a restart neither
 *   loses nor re-sends a message;
 * - `instance` and `tether_seq`: the last tether stream frame handled, the
 *   `after_seq` of the next stream request (reset when the instance changes);
 * - `replies`: which Telegram message each tether `msg_id` came from, so
 *   answers are threaded under the right message;
 * - `renders`: answers still being streamed (chat, Telegram message ids,
 *   text so far), so a restart mid-answer keeps editing the same messages;
 * - `chats`: the chats that have written to this gateway (chat id -> last
 *   message time): egress goes only to these (and only while they are allowed),
 *   so a guest cannot make the bot message a chat of its choosing.
 *
 * Everything here is bounded: replies and chats keep the most recent
 * {@link MAX_REPLIES} / {@link MAX_CHATS}; renders are bounded by egress.ts.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";

/** Where a tether message came from in Telegram. */
export const ReplyTarget = z.object({ chat_id: z.string(), message_id: z.number().int() });
export type ReplyTarget = z.infer<typeof ReplyTarget>;

/** A render in progress (see renderer.ts). */
export const RenderSnapshot = z.object({
  chat_id: z.string(),
  reply_to_message_id: z.number().int().optional(),
  text: z.string(),
  message_ids: z.array(z.number().int()),
  shown: z.array(z.string()),
  /** `text` is the final text; only the last Bot API calls were pending. */
  finished: z.boolean().optional(),
  /** Last change (ms since the epoch), for the idle expiry of renders. */
  updated_at: z.number().optional(),
});
export type RenderSnapshot = z.infer<typeof RenderSnapshot>;

/** The state file. */
export const GatewayStateFile = z.object({
  version: z.literal(1),
  telegram_offset: z.number().int().min(0),
  instance: z.string().optional(),
  tether_seq: z.number().int().min(0),
  replies: z.record(z.string(), ReplyTarget),
  renders: z.record(z.string(), RenderSnapshot),
  /** Chats that have written to the gateway (older files have none). */
  chats: z.record(z.string(), z.number()).default({}),
});
export type GatewayStateFile = z.output<typeof GatewayStateFile>;

/** How many reply targets are remembered. */
export const MAX_REPLIES = 1000;
/** How many chats that wrote to the gateway are remembered (the least recent is forgotten first). */
export const MAX_CHATS = 1000;

/** The persisted state, loaded once and saved after every change. */
export class GatewayState {
  readonly data: GatewayStateFile;

  private constructor(
    readonly path: string,
    data: GatewayStateFile,
    /** True when no stream position was known for this instance (first start, or a new instance). */
    readonly fresh: boolean,
  ) {
    this.data = data;
  }

  /**
   * Load the state for `instance` (a missing file is a fresh start). A stream
   * position recorded for another instance is discarded.
   */
  static load(path: string, instance: string): GatewayState {
    let data: GatewayStateFile = { version: 1, telegram_offset: 0, tether_seq: 0, replies: {}, renders: {}, chats: {} };
    let text: string | undefined;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new Error(`gateway state ${path} is not valid JSON (${(err as Error).message})\nhint: move it away to start fresh`);
      }
      const parsed = GatewayStateFile.safeParse(json);
      if (!parsed.success) throw new Error(`gateway state ${path} is invalid: ${parsed.error.issues[0]?.message}\nhint: move it away to start fresh`);
      data = parsed.data;
    }
    const fresh = data.instance !== instance;
    if (fresh) data = { ...data, instance, tether_seq: 0, replies: {}, renders: {} };
    return new GatewayState(path, data, fresh);
  }

  /** Record a Telegram origin for a tether message (bounded, oldest forgotten first). */
  remember(msgId: string, target: ReplyTarget): void {
    this.data.replies[msgId] = target;
    const keys = Object.keys(this.data.replies);
    for (let i = 0; i < keys.length - MAX_REPLIES; i++) delete this.data.replies[keys[i] as string];
  }

  /** Record that `chat` wrote to the gateway now (bounded, least recent forgotten first). */
  sawChat(chat: string, now = Date.now()): void {
    this.data.chats[chat] = now;
    // Chat ids are numeric strings, which objects order numerically, not by insertion: evict by time.
    const entries = Object.entries(this.data.chats);
    if (entries.length <= MAX_CHATS) return;
    entries.sort((a, b) => a[1] - b[1]);
    for (const [key] of entries.slice(0, entries.length - MAX_CHATS)) delete this.data.chats[key];
  }

  /** Whether `chat` has written to the gateway (and is still remembered). */
  knowsChat(chat: string): boolean {
    return Object.hasOwn(this.data.chats, chat);
  }

  /** Write the file atomically (temp file + rename), creating `data/` with 0700. */
  save(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.data)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}
