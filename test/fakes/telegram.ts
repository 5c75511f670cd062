/**
 * A local stand-in for the Telegram Bot API (`{base}/bot{token}/{method}`),
 * with the real envelopes: `{"ok":true,"result":...}` and
 * `{"ok":false,"error_code","description","parameters":{"retry_after"}}`.
 *
 * - `getUpdates`: `offset` confirms (drops) every update below it; returns
 *   pending updates at once, else long-polls up to `timeout` seconds; a newer
 *   `getUpdates` ends a waiting one with 409 Conflict, as Telegram does.
 * - `sendMessage`, `editMessageText` (400 "message is not modified" for equal
 *   text, "message to edit not found"), `sendChatAction`, `getMe`.
 * - Texts over 4096 characters get 400 "message is too long".
 * - Parameters may come as JSON, form data or query string.
 * Every call is recorded with a timestamp; `failNext` scripts errors.
 */

/** One recorded Bot API call. */
export interface TgCall {
  method: string;
  params: Record<string, any>;
  at: number;
}

/** A message the bot sent, as the fake stores it. */
export interface TgSent {
  message_id: number;
  chat_id: string;
  text: string;
  reply_to?: number;
  edits: number;
}

interface Waiter {
  resolve: (r: Response) => void;
  offset: number;
  timer: ReturnType<typeof setTimeout>;
}

const BOT = { id: 7000001, is_bot: true, first_name: "Aegis Test Bot", username: "aegis_test_bot" };

/** The fake Bot API server. */
export class FakeTelegram {
  readonly calls: TgCall[] = [];
  readonly sent: TgSent[] = [];
  private readonly updates: Record<string, any>[] = [];
  private nextUpdateId = 100_000;
  private nextMessageId = 1;
  private waiter: Waiter | undefined;
  private readonly failures: { method: string; code: number; description: string; retryAfter?: number }[] = [];
  private readonly server: ReturnType<typeof Bun.serve>;

  constructor(readonly token = "123456:TEST-token-abcdef") {
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: (req) => this.handle(req) });
  }

  /** Value for `TELEGRAM_API_BASE`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** Queue a raw update (its `update_id` is assigned). */
  pushUpdate(update: Record<string, any>): number {
    const id = this.nextUpdateId++;
    this.updates.push({ update_id: id, ...update });
    this.wake();
    return id;
  }

  /** Queue a text message from a user in a chat; returns its message_id. */
  pushMessage(opts: { chatId: number; text: string; from?: { id: number; first_name?: string; last_name?: string; username?: string }; chatType?: string }): number {
    const message_id = this.nextMessageId++;
    const from = opts.from ?? { id: 42, first_name: "Ann", username: "ann" };
    this.pushUpdate({
      message: { message_id, date: Math.floor(Date.now() / 1000), chat: { id: opts.chatId, type: opts.chatType ?? "private" }, from: { is_bot: false, ...from }, text: opts.text },
    });
    return message_id;
  }

  /** Updates not yet confirmed by an offset. */
  get pending(): number {
    return this.updates.length;
  }

  /** Make the next call of `method` fail with this Bot API error. */
  failNext(method: string, code: number, description: string, retryAfter?: number): void {
    this.failures.push({ method, code, description, retryAfter });
  }

  /** Recorded calls of one method. */
  callsOf(method: string): TgCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Stop the server (waiting long polls are released). */
  stop(): void {
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.resolve(ok([]));
      this.waiter = undefined;
    }
    this.server.stop(true);
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!m) return fail(404, "Not Found");
    const [, token, method] = m as unknown as [string, string, string];
    if (token !== this.token) return fail(401, "Unauthorized");
    const params: Record<string, any> = Object.fromEntries(url.searchParams);
    const type = req.headers.get("content-type") ?? "";
    if (type.includes("application/json")) Object.assign(params, await req.json());
    else if (type.includes("form")) for (const [k, v] of await req.formData()) params[k] = v;
    this.calls.push({ method, params, at: Date.now() });
    const i = this.failures.findIndex((f) => f.method === method);
    if (i !== -1) {
      const [f] = this.failures.splice(i, 1);
      return fail(f!.code, f!.description, f!.retryAfter);
    }
    switch (method) {
      case "getMe":
        return ok(BOT);
      case "getUpdates":
        return this.getUpdates(params);
      case "sendMessage":
        return this.sendMessage(params);
      case "editMessageText":
        return this.editMessageText(params);
      case "sendChatAction":
        return params.chat_id === undefined || !params.action ? fail(400, "Bad Request: chat_id and action are required") : ok(true);
      default:
        return fail(404, "Not Found");
    }
  }

  private getUpdates(params: Record<string, any>): Response | Promise<Response> {
    const offset = Number(params.offset ?? 0);
    if (offset > 0) {
      while (this.updates.length > 0 && this.updates[0]!.update_id < offset) this.updates.shift();
    }
    const limit = Math.min(100, Number(params.limit ?? 100));
    if (this.updates.length > 0) return ok(this.updates.slice(0, limit));
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.resolve(fail(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"));
      this.waiter = undefined;
    }
    const timeoutSec = Number(params.timeout ?? 0);
    if (timeoutSec <= 0) return ok([]);
    return new Promise<Response>((resolve) => {
      const waiter: Waiter = {
        resolve,
        offset,
        timer: setTimeout(() => {
          if (this.waiter === waiter) this.waiter = undefined;
          resolve(ok([]));
        }, timeoutSec * 1000),
      };
      this.waiter = waiter;
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = undefined;
    clearTimeout(w.timer);
    w.resolve(ok(this.updates.filter((u) => u.update_id >= w.offset).slice(0, 100)));
  }

  private sendMessage(params: Record<string, any>): Response {
    const text = String(params.text ?? "");
    if (params.chat_id === undefined) return fail(400, "Bad Request: chat_id is empty");
    if (text.length === 0) return fail(400, "Bad Request: message text is empty");
    if (text.length > 4096) return fail(400, "Bad Request: message is too long");
    const replyTo = params.reply_parameters?.message_id ?? params.reply_to_message_id;
    const msg: TgSent = { message_id: this.nextMessageId++, chat_id: String(params.chat_id), text, edits: 0 };
    if (replyTo !== undefined) msg.reply_to = Number(replyTo);
    this.sent.push(msg);
    return ok(this.messageJson(msg));
  }

  private editMessageText(params: Record<string, any>): Response {
    const text = String(params.text ?? "");
    const msg = this.sent.find((s) => s.message_id === Number(params.message_id) && s.chat_id === String(params.chat_id));
    if (!msg) return fail(400, "Bad Request: message to edit not found");
    if (text.length === 0) return fail(400, "Bad Request: message text is empty");
    if (text.length > 4096) return fail(400, "Bad Request: MESSAGE_TOO_LONG");
    if (text === msg.text) return fail(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
    msg.text = text;
    msg.edits++;
    return ok({ ...this.messageJson(msg), edit_date: Math.floor(Date.now() / 1000) });
  }

  private messageJson(msg: TgSent): Record<string, unknown> {
    const chatId = Number(msg.chat_id);
    return { message_id: msg.message_id, from: BOT, chat: { id: chatId, type: chatId < 0 ? "group" : "private" }, date: Math.floor(Date.now() / 1000), text: msg.text };
  }
}

function ok(result: unknown): Response {
  return Response.json({ ok: true, result });
}

function fail(code: number, description: string, retryAfter?: number): Response {
  const body: Record<string, unknown> = { ok: false, error_code: code, description };
  if (retryAfter !== undefined) body.parameters = { retry_after: retryAfter };
  return Response.json(body, { status: code });
}
