import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TetherEgressDraft } from "../../../../src/api/schema/tether.ts";
import { abortableSleep } from "../../../../guest/agent/providers/index.ts";
import { type ChatProvider, type ChatRequest, ProviderError, type StreamResult } from "../../../../guest/agent/providers/types.ts";
import { AgentRuntime, type RuntimeDeps } from "../../../../guest/agent/runtime.ts";
import { SessionStore } from "../../../../guest/agent/sessions.ts";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const session = { channel: "test", id: "1" };
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-rt-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A provider that answers each request with scripted chunks, 20 ms apart. */
class ScriptedProvider implements ChatProvider {
  readonly label = "OpenAI" as const;
  readonly model = "scripted";
  readonly requests: ChatRequest[] = [];
  failures: ProviderError[] = [];
  async stream(req: ChatRequest, { signal, onText }: { signal: AbortSignal; onText: (t: string) => void }): Promise<StreamResult> {
    this.requests.push(structuredClone(req));
    const f = this.failures.shift();
    if (f) throw f;
    const last = req.messages.at(-1)?.content ?? "";
    for (const piece of ["re: ", last]) {
      await abortableSleep(20, signal);
      onText(piece);
    }
    return { toolCalls: [] };
  }
}

function setup(provider: ChatProvider | undefined, extra: Partial<RuntimeDeps> = {}) {
  const frames: TetherEgressDraft[] = [];
  const rt = new AgentRuntime({
    provider,
    missingKeyHint: "OPENAI_API_KEY",
    sessions: new SessionStore(dir, 100, quiet),
    systemPrompt: "sys",
    contextTurns: 40,
    contextChars: 24000,
    maxAttempts: 3,
    retryBaseMs: 1,
    emit: (f) => frames.push(f),
    log: quiet,
    ...extra,
  });
  const msg = (msg_id: string, text: string) => rt.handle({ v: 1, type: "user.message", session, msg_id, payload: { text } });
  return { rt, frames, msg };
}

const summary = (frames: TetherEgressDraft[]) =>
  frames.map((f) => `${f.reply_to}:${f.type}:${"state" in f.payload ? f.payload.state : "text" in f.payload ? f.payload.text : f.payload.msg_id}`);

describe("AgentRuntime", () => {
  it("acks at once, then answers one message at a time in order", async () => {
    const p = new ScriptedProvider();
    const { rt, frames, msg } = setup(p);
    msg("m1", "one");
    msg("m2", "two");
    expect(summary(frames)).toEqual(["m1:event.ack:m1", "m1:status.presence:thinking", "m2:event.ack:m2"]);
    await rt.whenIdle();
    expect(summary(frames).slice(3)).toEqual([
      "m1:status.presence:typing",
      "m1:assistant.delta:re: ",
      "m1:assistant.delta:one",
      "m1:assistant.done:re: one",
      "m1:status.presence:idle",
      "m2:status.presence:thinking",
      "m2:status.presence:typing",
      "m2:assistant.delta:re: ",
      "m2:assistant.delta:two",
      "m2:assistant.done:re: two",
      "m2:status.presence:idle",
    ]);
    expect(p.requests[1]!.messages.map((m) => m.content)).toEqual(["one", "re: one", "two"]);
  });

  it("cancels a queued message without calling the provider", async () => {
    const p = new ScriptedProvider();
    const { rt, frames, msg } = setup(p);
    msg("m1", "one");
    msg("m2", "two");
    rt.handle({ v: 1, type: "control.cancel", session, payload: { msg_id: "m2" } });
    await rt.whenIdle();
    expect(p.requests.length).toBe(1);
    const done = frames.filter((f) => f.type === "assistant.done" && f.reply_to === "m2");
    expect(done.map((f) => f.payload)).toEqual([{ text: "", error: { code: "cancelled", message: "cancelled before it started" } }]);
  });

  it("does not answer a redelivered message twice", async () => {
    const p = new ScriptedProvider();
    const { rt, frames, msg } = setup(p);
    msg("m1", "one");
    msg("m1", "one");
    await rt.whenIdle();
    expect(p.requests.length).toBe(1);
    expect(frames.filter((f) => f.type === "event.ack").length).toBe(2);
  });

  it("answers with a no_api_key error when no key is configured", async () => {
    const { rt, frames, msg } = setup(undefined);
    msg("m1", "hello");
    await rt.whenIdle();
    const done = frames.find((f) => f.type === "assistant.done")!;
    expect(done.payload).toMatchObject({ text: "", error: { code: "no_api_key" } });
    expect(frames.at(-1)!.payload).toEqual({ state: "idle" });
  });

  it("retries retryable failures before any text and reports the last error after the tries run out", async () => {
    const p = new ScriptedProvider();
    p.failures = [new ProviderError("rate_limited", "slow down", true, 5)];
    const { rt, frames, msg } = setup(p);
    msg("m1", "x");
    await rt.whenIdle();
    expect(p.requests.length).toBe(2);
    expect(frames.find((f) => f.type === "assistant.done")!.payload).toEqual({ text: "re: x" });

    p.failures = [1, 2, 3].map(() => new ProviderError("upstream_error", "HTTP 500", true));
    msg("m2", "y");
    await rt.whenIdle();
    expect(frames.filter((f) => f.type === "assistant.done").at(-1)!.payload).toEqual({ text: "", error: { code: "upstream_error", message: "HTTP 500" } });
  });
});
