/**
 * @module gateway/typing
 * The typing indicator: `sendChatAction typing` at once and then every 3 s
 * (Telegram shows it for about 5 s), from the user's message until the answer
 * is done, with a 2 minute hard cap per answer so a lost `assistant.done`
 * cannot leave a chat "typing" forever.
 */

/** Timing of the indicator. */
export interface TypingOptions {
  intervalMs: number;
  capMs: number;
}

/** Spec values: every 3 s, at most 2 min. */
export const DEFAULT_TYPING: TypingOptions = { intervalMs: 3000, capMs: 120_000 };

interface Active {
  interval?: ReturnType<typeof setInterval>;
  cap?: ReturnType<typeof setTimeout>;
  capped: boolean;
}

/** Per-chat typing indicators. */
export class TypingIndicator {
  private readonly chats = new Map<string, Active>();

  /** @param send sends one `typing` action; its failures are reported through `onError` */
  constructor(
    private readonly send: (chatId: string) => Promise<unknown>,
    private readonly onError: (chatId: string, err: unknown) => void,
    private readonly opts: TypingOptions = DEFAULT_TYPING,
  ) {}

  /** Start (or keep) the indicator for a chat; a capped chat stays quiet until {@link stop}. */
  start(chatId: string): void {
    if (this.chats.has(chatId)) return;
    const active: Active = { capped: false };
    this.chats.set(chatId, active);
    const tick = () => {
      this.send(chatId).catch((err: unknown) => this.onError(chatId, err));
    };
    tick();
    active.interval = setInterval(tick, this.opts.intervalMs);
    active.cap = setTimeout(() => {
      clearInterval(active.interval);
      active.capped = true;
    }, this.opts.capMs);
  }

  /** Whether the indicator is currently sending for a chat. */
  isActive(chatId: string): boolean {
    const a = this.chats.get(chatId);
    return a !== undefined && !a.capped;
  }

  /** Stop the indicator for a chat (the answer is done). */
  stop(chatId: string): void {
    const a = this.chats.get(chatId);
    if (!a) return;
    clearInterval(a.interval);
    clearTimeout(a.cap);
    this.chats.delete(chatId);
  }

  /** Stop every indicator (shutdown). */
  stopAll(): void {
    for (const id of [...this.chats.keys()]) this.stop(id);
  }
}
