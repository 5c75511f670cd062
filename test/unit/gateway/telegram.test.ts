import { afterAll, describe, expect, it } from "bun:test";
import { frameFor, tetherUser } from "../../../src/gateway/ingress.ts";
import { createLog, redact, registerSecret } from "../../../src/gateway/log.ts";
import { TelegramApi, TelegramError } from "../../../src/gateway/telegram.ts";
import { FakeTelegram } from "../../fakes/telegram.ts";

const tg = new FakeTelegram();
afterAll(() => tg.stop());
const api = (token = tg.token) => new TelegramApi({ token, baseUrl: tg.baseUrl, backoffMs: 5 });

describe("TelegramApi", () => {
  it("unwraps ok envelopes and sends replies with reply_parameters", async () => {
    expect((await api().getMe()).username).toBe("aegis_test_bot");
    const m = await api().sendMessage("77", "hello", 5);
    expect(m.text).toBe("hello");
    expect(tg.callsOf("sendMessage").at(-1)!.params).toEqual({ chat_id: 77, text: "hello", reply_parameters: { message_id: 5, allow_sending_without_reply: true } });
  });

  it("waits out flood control (429 retry_after) and retries 5xx", async () => {
    tg.failNext("sendChatAction", 429, "Too Many Requests: retry after 1", 1);
    const t0 = Date.now();
    await api().sendChatAction("77");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    tg.failNext("editMessageText", 502, "Bad Gateway");
    const m = await api().sendMessage("77", "a");
    await api().editMessageText("77", m.message_id, "b");
    expect(tg.sent.find((s) => s.message_id === m.message_id)!.text).toBe("b");
  });

  it("fails at once on other errors, with the description but not the token", async () => {
    const err = await api("999:wrong-token-value").getMe().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TelegramError);
    expect((err as TelegramError).errorCode).toBe(401);
    expect((err as Error).message).not.toContain("wrong-token-value");
    const tooLong = await api().sendMessage("77", "x".repeat(4097)).catch((e: unknown) => e);
    expect((tooLong as TelegramError).description).toContain("message is too long");
  });

  it("long-polls getUpdates and confirms updates with the offset", async () => {
    const a = tg.pushMessage({ chatId: 1, text: "first" });
    const first = await api().getUpdates(0, 1, new AbortController().signal);
    expect(first.map((u) => u.message?.text)).toEqual(["first"]);
    const t0 = Date.now();
    setTimeout(() => tg.pushMessage({ chatId: 1, text: "second" }), 150);
    const second = await api().getUpdates(first[0]!.update_id + 1, 5, new AbortController().signal);
    expect(second.map((u) => u.message?.text)).toEqual(["second"]);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(a).toBeGreaterThan(0);
  });
});

describe("ingress frames", () => {
  it("builds a user.message with the sender's identity", () => {
    const msg = { message_id: 3, chat: { id: -100123, type: "group" }, from: { id: 9, first_name: "John", last_name: "Doe", username: "johndoe" }, text: "Hi all" };
    expect(frameFor(msg)).toEqual({
      v: 1,
      type: "user.message",
      session: { channel: "telegram", id: "-100123" },
      msg_id: "tg--100123-3",
      payload: { text: "Hi all", user: { id: "9", username: "johndoe", name: "John Doe" } },
    });
    expect(tetherUser({ message_id: 1, chat: { id: 1 } })).toBeUndefined();
  });

  it("maps /cancel to control.cancel and skips messages without text", () => {
    expect(frameFor({ message_id: 1, chat: { id: 5 }, text: "/cancel@aegis_test_bot" })).toMatchObject({ type: "control.cancel", payload: {} });
    expect(frameFor({ message_id: 1, chat: { id: 5 } })).toBeUndefined();
  });
});

describe("log redaction", () => {
  it("never prints a registered token", () => {
    registerSecret("123456:SECRET-abc");
    const lines: string[] = [];
    createLog((l) => lines.push(l)).error("GET https://api.telegram.org/bot123456:SECRET-abc/getMe failed");
    expect(lines[0]).toBe("aegis-gateway: error: GET https://api.telegram.org/bot<redacted>/getMe failed\n");
    expect(redact("x")).toBe("x");
  });
});
