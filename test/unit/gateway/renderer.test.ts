import { describe, expect, it } from "bun:test";
import { finalText, type RenderApi, ReplyRenderer } from "../../../src/gateway/renderer.ts";
import { TelegramError } from "../../../src/gateway/telegram.ts";

/** Records Bot API calls with timestamps; each call takes `latency` ms. */
class RecordingApi implements RenderApi {
  readonly calls: { op: string; id: number; text: string; replyTo?: number; at: number }[] = [];
  private next = 100;
  constructor(private readonly latency = 5) {}
  async sendMessage(_chat: string, text: string, replyTo?: number) {
    await Bun.sleep(this.latency);
    const id = this.next++;
    this.calls.push({ op: "send", id, text, replyTo, at: Date.now() });
    return { message_id: id };
  }
  async editMessageText(_chat: string, id: number, text: string) {
    await Bun.sleep(this.latency);
    this.calls.push({ op: "edit", id, text, at: Date.now() });
    return true;
  }
}

const noError = (err: unknown) => {
  throw err;
};

describe("ReplyRenderer", () => {
  it("sends on the first delta, then edits at most once per throttle window, coalescing deltas, then a final edit", async () => {
    const api = new RecordingApi();
    const r = new ReplyRenderer(api, "1", 7, { throttleMs: 200, onError: noError });
    r.delta("a");
    for (let i = 0; i < 10; i++) {
      await Bun.sleep(40);
      r.delta(String(i));
    }
    await r.done("a0123456789");
    const ops = api.calls.map((c) => c.op);
    expect(ops[0]).toBe("send");
    expect(api.calls[0]).toMatchObject({ text: "a", replyTo: 7 });
    expect(ops.filter((o) => o === "edit").length).toBeLessThanOrEqual(4);
    for (let i = 2; i < api.calls.length; i++) expect(api.calls[i]!.at - api.calls[i - 1]!.at).toBeGreaterThanOrEqual(195);
    expect(api.calls.at(-1)!.text).toBe("a0123456789");
    expect(new Set(api.calls.map((c) => c.id))).toEqual(new Set([100]));
  });

  it("continues past 4096 characters in further messages and only edits changed pieces", async () => {
    const api = new RecordingApi(1);
    const r = new ReplyRenderer(api, "1", undefined, { throttleMs: 10, onError: noError, limit: 50 });
    r.delta("x".repeat(30));
    await Bun.sleep(20);
    r.delta(` ${"y".repeat(40)}`);
    await r.done(`${"x".repeat(30)} ${"y".repeat(40)} zz`);
    const final = new Map<number, string>();
    for (const c of api.calls) final.set(c.id, c.text);
    expect([...final.values()]).toEqual(["x".repeat(30), `${"y".repeat(40)} zz`]);
    expect(api.calls.filter((c) => c.op === "send")[1]!.replyTo).toBe(100);
  });

  it("shows errors and cancellation, and a message for an empty answer", () => {
    expect(finalText("partial", { code: "cancelled", message: "cancelled" })).toBe("partial\n\n(cancelled)");
    expect(finalText("", { code: "unauthorized", message: "OpenAI API rejected the API key" })).toBe("⚠️ The agent could not answer: OpenAI API rejected the API key");
    expect(finalText("some", { code: "stream_interrupted", message: "broke" })).toBe("some\n\n⚠️ broke");
    expect(finalText("", undefined)).toBe("(empty response)");
  });

  it("sends the error note as a new message when nothing was streamed, and ignores 'not modified'", async () => {
    const api = new RecordingApi(1);
    const r = new ReplyRenderer(api, "1", 3, { throttleMs: 10, onError: noError });
    await r.done("", { code: "rate_limited", message: "slow down" });
    expect(api.calls).toMatchObject([{ op: "send", text: "⚠️ The agent could not answer: slow down", replyTo: 3 }]);

    const errors: unknown[] = [];
    const flaky: RenderApi = {
      sendMessage: async () => ({ message_id: 1 }),
      editMessageText: async () => {
        throw new TelegramError("editMessageText", 400, "Bad Request: message is not modified: specified new message content");
      },
    };
    const r2 = new ReplyRenderer(flaky, "1", undefined, { throttleMs: 1, onError: (e) => errors.push(e) });
    r2.delta("a");
    await r2.done("ab");
    expect(errors).toEqual([]);
  });

  it("resumes from a snapshot, editing the same message", async () => {
    const api = new RecordingApi(1);
    const r = new ReplyRenderer(api, "1", 3, { throttleMs: 10, onError: noError }, { chat_id: "1", text: "abc", message_ids: [55], shown: ["abc"] });
    r.delta("d");
    await r.done("abcd");
    expect(api.calls.every((c) => c.op === "edit" && c.id === 55)).toBe(true);
    expect(api.calls.at(-1)!.text).toBe("abcd");
  });
});
