import { afterAll, describe, expect, it } from "bun:test";
import { anthropicMessages, AnthropicProvider } from "../../../../guest/agent/providers/anthropic.ts";
import { httpError, retryAfterMs } from "../../../../guest/agent/providers/http.ts";
import { retryDelayMs, withRetries } from "../../../../guest/agent/providers/index.ts";
import { OpenAiProvider } from "../../../../guest/agent/providers/openai.ts";
import { CancelledError, ProviderError } from "../../../../guest/agent/providers/types.ts";
import { FakeAnthropic } from "../../../fakes/anthropic.ts";
import { FakeOpenAI } from "../../../fakes/openai.ts";

const openai = new FakeOpenAI({ apiKey: "sk-test" });
const anthropic = new FakeAnthropic({ apiKey: "ak-test" });
afterAll(() => {
  openai.stop();
  anthropic.stop();
});

const timeouts = { connectTimeoutMs: 2000, idleTimeoutMs: 300 };
const oa = (apiKey = "sk-test") => new OpenAiProvider({ apiKey, model: "gpt-4o", baseUrl: openai.baseUrl, ...timeouts });
const an = (apiKey = "ak-test") => new AnthropicProvider({ apiKey, model: "claude-sonnet-4-5", baseUrl: anthropic.baseUrl, maxTokens: 64, ...timeouts });
const req = { system: "sys", messages: [{ role: "user" as const, content: "hi" }] };

async function collect(p: OpenAiProvider | AnthropicProvider, signal = new AbortController().signal): Promise<{ text: string[]; error?: unknown }> {
  const text: string[] = [];
  try {
    await p.stream(req, { signal, onText: (t) => text.push(t) });
    return { text };
  } catch (error) {
    return { text, error };
  }
}

describe("OpenAI provider", () => {
  it("streams deltas from fragmented CRLF SSE and sends the request in OpenAI's format", async () => {
    openai.replies.push({ chunks: ["Hel", "lo", " 👋"], crlf: true, fragment: 5 });
    expect(await collect(oa())).toEqual({ text: ["Hel", "lo", " 👋"] });
    const r = openai.requests.at(-1)!;
    expect(r.headers.authorization).toBe("Bearer sk-test");
    expect(r.body).toEqual({ model: "gpt-4o", stream: true, messages: [{ role: "system", content: "sys" }, { role: "user", content: "hi" }] });
  });

  it("maps 401, 429 with retry-after, 500, a mid-stream error and a cut stream to typed errors", async () => {
    const bad = await collect(oa("sk-wrong"));
    expect(bad.error).toMatchObject({ code: "unauthorized", retryable: false });
    expect((bad.error as Error).message).not.toContain("sk-wrong");
    openai.replies.push({ status: 429, retryAfter: "2" });
    expect((await collect(oa())).error).toMatchObject({ code: "rate_limited", retryable: true, retryAfterMs: 2000 });
    openai.replies.push({ status: 500 });
    expect((await collect(oa())).error).toMatchObject({ code: "upstream_error", retryable: true });
    openai.replies.push({ chunks: ["a", "b"], streamErrorAfter: 1 });
    expect(await collect(oa())).toMatchObject({ text: ["a"], error: { code: "provider_error" } });
    openai.replies.push({ chunks: ["a", "b", "c"], cutAfter: 2 });
    expect(await collect(oa())).toMatchObject({ text: ["a", "b"], error: { code: "stream_interrupted" } });
    openai.replies.push({ chunks: ["a", "b"], endAfter: 1 });
    expect(await collect(oa())).toMatchObject({ text: ["a"], error: { code: "stream_interrupted" } });
  });

  it("times out a silent stream instead of hanging", async () => {
    openai.replies.push({ chunks: ["a", "b"], hangAfter: 1 });
    const t0 = Date.now();
    expect(await collect(oa())).toMatchObject({ text: ["a"], error: { code: "timeout" } });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("stops with CancelledError when aborted mid-stream", async () => {
    openai.replies.push({ chunks: ["a", "b", "c", "d"], delayMs: 100 });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 150);
    const r = await collect(oa(), ctl.signal);
    expect(r.error).toBeInstanceOf(CancelledError);
    expect(r.text.length).toBeLessThan(4);
  });
});

describe("Anthropic provider", () => {
  it("streams text_delta events and sends Anthropic's headers and body", async () => {
    anthropic.replies.push({ chunks: ["Hi", " there"], fragment: 3 });
    expect(await collect(an())).toEqual({ text: ["Hi", " there"] });
    const r = anthropic.requests.at(-1)!;
    expect(r.headers["x-api-key"]).toBe("ak-test");
    expect(r.headers["anthropic-version"]).toBe("2023-06-01");
    expect(r.body).toEqual({ model: "claude-sonnet-4-5", max_tokens: 64, stream: true, system: "sys", messages: [{ role: "user", content: "hi" }] });
  });

  it("turns an error event mid-stream into an error, retryable only when overloaded", async () => {
    anthropic.replies.push({ chunks: ["a", "b"], streamErrorAfter: 1 });
    expect(await collect(an())).toMatchObject({ text: ["a"], error: { code: "overloaded", retryable: true } });
    anthropic.replies.push({ chunks: ["a"], streamErrorAfter: 0, errorType: "api_error", errorMessage: "boom" });
    expect((await collect(an())).error).toMatchObject({ code: "provider_error", retryable: false });
  });

  it("maps HTTP errors and a stream without message_stop", async () => {
    expect((await collect(an("bad"))).error).toMatchObject({ code: "unauthorized" });
    anthropic.replies.push({ status: 529 });
    expect((await collect(an())).error).toMatchObject({ code: "upstream_error", retryable: true });
    anthropic.replies.push({ chunks: ["a"], endAfter: 1 });
    expect((await collect(an())).error).toMatchObject({ code: "stream_interrupted" });
  });

  it("starts the conversation with a user turn and merges same-role turns", () => {
    expect(
      anthropicMessages([
        { role: "assistant", content: "orphan" },
        { role: "user", content: "a" },
        { role: "user", content: "b" },
        { role: "assistant", content: "c" },
      ]),
    ).toEqual([
      { role: "user", content: "a\n\nb" },
      { role: "assistant", content: "c" },
    ]);
  });
});

describe("retry policy", () => {
  it("parses retry-after in seconds, ms and HTTP dates", () => {
    expect(retryAfterMs(new Headers({ "retry-after": "3" }))).toBe(3000);
    expect(retryAfterMs(new Headers({ "retry-after-ms": "250", "retry-after": "3" }))).toBe(250);
    expect(retryAfterMs(new Headers({ "retry-after": new Date(10_000).toUTCString() }), 4000)).toBe(6000);
    expect(retryAfterMs(new Headers())).toBeUndefined();
  });

  it("backs off exponentially, honours retry-after, caps the wait", () => {
    const e = new ProviderError("upstream_error", "x", true);
    expect([1, 2, 3].map((n) => retryDelayMs(e, n, 100))).toEqual([100, 200, 400]);
    expect(retryDelayMs(new ProviderError("rate_limited", "x", true, 1500), 1, 100)).toBe(1500);
    expect(retryDelayMs(new ProviderError("rate_limited", "x", true, 10_000_000), 1, 100)).toBe(30_000);
  });

  it("retries retryable errors up to the limit, but never after text was emitted", async () => {
    const signal = new AbortController().signal;
    let tries = 0;
    const failing = async () => {
      tries++;
      throw new ProviderError("upstream_error", "x", true);
    };
    await expect(withRetries(failing, { maxAttempts: 3, baseMs: 1, signal, emitted: () => false })).rejects.toThrow("x");
    expect(tries).toBe(3);
    tries = 0;
    await expect(withRetries(failing, { maxAttempts: 3, baseMs: 1, signal, emitted: () => true })).rejects.toThrow("x");
    expect(tries).toBe(1);
    tries = 0;
    const unauthorized = async () => {
      tries++;
      throw new ProviderError("unauthorized", "no", false);
    };
    await expect(withRetries(unauthorized, { maxAttempts: 3, baseMs: 1, signal, emitted: () => false })).rejects.toThrow("no");
    expect(tries).toBe(1);
  });

  it("classifies HTTP statuses", () => {
    expect(httpError("OpenAI", 403, new Headers(), "{}").code).toBe("unauthorized");
    expect(httpError("OpenAI", 400, new Headers(), '{"error":{"message":"bad model"}}').message).toContain("bad model");
    expect(httpError("OpenAI", 503, new Headers(), "<html>").retryable).toBe(true);
  });
});
