/**
 * The agent runtime as a process, played against the OpenAI and Anthropic
 * fakes (real SSE formats) by a TCP client that plays the guest harness.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentProcess, type Frame, HarnessClient } from "../fakes/agent-process.ts";
import { FakeAnthropic } from "../fakes/anthropic.ts";
import { FakeOpenAI } from "../fakes/openai.ts";

const dir = mkdtempSync(join(tmpdir(), "aegis-agent-it-"));
const openai = new FakeOpenAI({ apiKey: "sk-test" });
const anthropic = new FakeAnthropic({ apiKey: "ak-test" });
afterAll(() => {
  openai.stop();
  anthropic.stop();
  rmSync(dir, { recursive: true, force: true });
});

const openaiEnv = (sessions: string, extra: Record<string, string> = {}) => ({
  OPENAI_API_KEY: "sk-test",
  OPENAI_BASE_URL: openai.baseUrl,
  AEGIS_SESSIONS_DIR: sessions,
  AEGIS_LLM_RETRY_BASE_MS: "50",
  AEGIS_LLM_IDLE_TIMEOUT_MS: "2000",
  ...extra,
});

const types = (frames: Frame[]) => frames.map((f) => (f.type === "status.presence" ? `presence:${f.payload.state}` : f.type));

describe("aegis-agent with OpenAI", () => {
  const sessions = join(dir, "openai-sessions");
  let agent: AgentProcess;
  let harness: HarnessClient;
  beforeAll(async () => {
    agent = await AgentProcess.start(openaiEnv(sessions));
    harness = await HarnessClient.connect(agent.port);
  });
  afterAll(async () => {
    harness?.close();
    await agent?.stop();
  });

  it("prints the spec's start lines", () => {
    expect(agent.stdout).toBe(`aegis-agent starting\nLLM provider: OpenAI\nagent listening on 127.0.0.1:${agent.port}\n`);
  });

  it("acks, shows presence, streams deltas in order and ends with the full text", async () => {
    openai.replies.push({ chunks: ["The ", "answer ", "is ", "42."], delayMs: 30, fragment: 11 });
    const id = harness.say("s1", "What is it?", { user: { id: "7", username: "johndoe", name: "John" } });
    const done = await harness.done(id);
    const frames = harness.framesFor(id);
    expect(types(frames)).toEqual(["event.ack", "presence:thinking", "presence:typing", "assistant.delta", "assistant.delta", "assistant.delta", "assistant.delta", "assistant.done", "presence:idle"]);
    expect(frames[0]!.payload).toEqual({ msg_id: id });
    const deltas = frames.filter((f) => f.type === "assistant.delta").map((f) => f.payload.text);
    expect(deltas).toEqual(["The ", "answer ", "is ", "42."]);
    expect(done.payload).toEqual({ text: deltas.join("") });
    expect(done.session).toEqual({ channel: "test", id: "s1" });
    const req = openai.requests.at(-1)!.body;
    expect(req.model).toBe("gpt-4o");
    expect(req.messages).toEqual([
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "[John]: What is it?" },
    ]);
  });

  it("persists the session as JSONL and sends the history with the next message", async () => {
    openai.replies.push({ chunks: ["Sure."] });
    const id = harness.say("s1", "And again?", { user: { username: "johndoe" } });
    await harness.done(id);
    const lines = readFileSync(join(sessions, "test_s1.jsonl"), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.role, l.content])).toEqual([
      ["user", "[John]: What is it?"],
      ["assistant", "The answer is 42."],
      ["user", "[johndoe]: And again?"],
      ["assistant", "Sure."],
    ]);
    expect(typeof lines[0].ts).toBe("string");
    expect(openai.requests.at(-1)!.body.messages.length).toBe(4);
  });

  it("cancels the in-flight request mid-stream and reports the partial text", async () => {
    openai.replies.push({ chunks: ["one ", "two ", "three ", "four ", "five"], delayMs: 150 });
    const id = harness.say("s2", "count");
    await harness.waitFor(() => harness.framesFor(id).some((f) => f.type === "assistant.delta"));
    harness.send({ type: "control.cancel", session: { channel: "test", id: "s2" }, payload: { msg_id: id } });
    const done = await harness.done(id, 3000);
    expect(done.payload.error).toEqual({ code: "cancelled", message: "cancelled" });
    const deltas = harness.framesFor(id).filter((f) => f.type === "assistant.delta").map((f) => f.payload.text).join("");
    expect(done.payload.text).toBe(deltas);
    expect(deltas.length).toBeLessThan("one two three four five".length);
  });

  it("queues messages of one session and answers them in order", async () => {
    openai.replies.push({ chunks: ["first"], delayMs: 50 }, { chunks: ["second"] });
    const a = harness.say("s3", "a");
    const b = harness.say("s3", "b");
    await harness.done(b);
    const order = harness.frames.filter((f) => f.type === "assistant.done" && (f.reply_to === a || f.reply_to === b)).map((f) => f.payload.text);
    expect(order).toEqual(["first", "second"]);
  });

  it("turns 401 into a clear error without retrying", async () => {
    const before = openai.requests.length;
    openai.replies.push({ status: 401 });
    const id = harness.say("e1", "hi");
    const done = await harness.done(id);
    expect(done.payload.text).toBe("");
    expect(done.payload.error.code).toBe("unauthorized");
    expect(done.payload.error.message).toContain("OpenAI API rejected the API key (HTTP 401)");
    expect(openai.requests.length - before).toBe(1);
  });

  it("retries 429 honouring retry-after, then answers", async () => {
    const before = openai.requests.length;
    openai.replies.push({ status: 429, retryAfter: "1" }, { chunks: ["ok"] });
    const t0 = Date.now();
    const done = await harness.done(harness.say("e2", "hi"));
    expect(done.payload).toEqual({ text: "ok" });
    expect(openai.requests.length - before).toBe(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
  });

  it("gives up on repeated 500s after three tries", async () => {
    const before = openai.requests.length;
    openai.replies.push({ status: 500 }, { status: 500 }, { status: 500 });
    const done = await harness.done(harness.say("e3", "hi"));
    expect(done.payload.error.code).toBe("upstream_error");
    expect(openai.requests.length - before).toBe(3);
  });

  it("reports a stream broken after some text, without retrying", async () => {
    const before = openai.requests.length;
    openai.replies.push({ chunks: ["par", "tial", "never"], cutAfter: 2 });
    const done = await harness.done(harness.say("e4", "hi"));
    expect(done.payload.text).toBe("partial");
    expect(done.payload.error.code).toBe("stream_interrupted");
    expect(openai.requests.length - before).toBe(1);
  });

  it("retries a stream that broke before any text", async () => {
    openai.replies.push({ chunks: ["x"], cutAfter: 0 }, { chunks: ["fine"] });
    const done = await harness.done(harness.say("e5", "hi"));
    expect(done.payload).toEqual({ text: "fine" });
  });

  it("buffers frames while the harness is disconnected and delivers them to the next connection", async () => {
    openai.replies.push({ chunks: ["a", "b", "c"], delayMs: 100 });
    const id = harness.say("s4", "go");
    await harness.waitFor(() => harness.framesFor(id).some((f) => f.type === "assistant.delta"));
    harness.close();
    await Bun.sleep(400);
    harness = await HarnessClient.connect(agent.port);
    const done = await harness.done(id);
    expect(done.payload.text).toBe("abc");
  });
});

describe("aegis-agent sessions across a restart", () => {
  it("reloads the history from disk after the process restarts", async () => {
    const sessions = join(dir, "restart-sessions");
    {
      await using agent = await AgentProcess.start(openaiEnv(sessions));
      const h = await HarnessClient.connect(agent.port);
      openai.replies.push({ chunks: ["Nice to meet you, Ada."] });
      await h.done(h.say("42", "My name is Ada.", { channel: "telegram" }));
      h.close();
    }
    await using agent = await AgentProcess.start(openaiEnv(sessions, { AEGIS_SYSTEM_PROMPT: "Be brief." }));
    const h = await HarnessClient.connect(agent.port);
    openai.replies.push({ chunks: ["Ada."] });
    await h.done(h.say("42", "What is my name?", { channel: "telegram" }));
    h.close();
    expect(openai.requests.at(-1)!.body.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "My name is Ada." },
      { role: "assistant", content: "Nice to meet you, Ada." },
      { role: "user", content: "What is my name?" },
    ]);
  });

  it("keeps only the turns within the context budget", async () => {
    const sessions = join(dir, "window-sessions");
    await using agent = await AgentProcess.start(openaiEnv(sessions, { AEGIS_CONTEXT_TURNS: "3" }));
    const h = await HarnessClient.connect(agent.port);
    for (const text of ["one", "two", "three"]) {
      openai.replies.push({ chunks: [`re ${text}`] });
      await h.done(h.say("w", text));
    }
    h.close();
    expect(openai.requests.at(-1)!.body.messages.slice(1).map((m: { content: string }) => m.content)).toEqual(["two", "re two", "three"]);
  });
});

describe("aegis-agent with Anthropic", () => {
  const env = () => ({
    ANTHROPIC_API_KEY: "ak-test",
    OPENAI_API_KEY: "sk-test",
    ANTHROPIC_BASE_URL: anthropic.baseUrl,
    AEGIS_SESSIONS_DIR: join(dir, "anthropic-sessions"),
    AEGIS_LLM_RETRY_BASE_MS: "50",
  });

  it("picks Anthropic, streams its events and sends its headers", async () => {
    await using agent = await AgentProcess.start(env());
    expect(agent.stdout.split("\n")[1]).toBe("LLM provider: Anthropic");
    const h = await HarnessClient.connect(agent.port);
    anthropic.replies.push({ chunks: ["Hello", ", ", "Ann"], delayMs: 20, crlf: true });
    const id = h.say("a1", "hi", { user: { name: "Ann" } });
    const done = await h.done(id);
    expect(done.payload).toEqual({ text: "Hello, Ann" });
    expect(types(h.framesFor(id)).filter((t) => t === "assistant.delta").length).toBe(3);
    const r = anthropic.requests.at(-1)!;
    expect(r.headers["anthropic-version"]).toBe("2023-06-01");
    expect(r.body).toMatchObject({ model: "claude-sonnet-4-5", stream: true, system: "You are a helpful assistant.", messages: [{ role: "user", content: "[Ann]: hi" }] });

    anthropic.replies.push({ chunks: ["half", "rest"], streamErrorAfter: 1, errorType: "api_error", errorMessage: "Internal server error" });
    const failed = await h.done(h.say("a1", "again"));
    expect(failed.payload.text).toBe("half");
    expect(failed.payload.error).toEqual({ code: "provider_error", message: "Anthropic stream error (api_error): Internal server error" });
    h.close();
  });

  it("answers with an error when no API key is set", async () => {
    await using agent = await AgentProcess.start({ AEGIS_SESSIONS_DIR: join(dir, "nokey") });
    expect(agent.stdout.split("\n")[1]).toBe("LLM provider: OpenAI");
    const h = await HarnessClient.connect(agent.port);
    const done = await h.done(h.say("n", "hi"));
    expect(done.payload.error.code).toBe("no_api_key");
    h.close();
  });
});
