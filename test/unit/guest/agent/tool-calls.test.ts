import { afterAll, afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TetherEgressDraft } from "../../../../src/api/schema/tether.ts";
import { loadAgentConfig } from "../../../../guest/agent/config.ts";
import { anthropicRoundMessages, AnthropicProvider, AnthropicToolCalls } from "../../../../guest/agent/providers/anthropic.ts";
import { openAiRoundMessages, OpenAiProvider, OpenAiToolCalls } from "../../../../guest/agent/providers/openai.ts";
import { type ChatProvider, type ChatRequest, parseToolArguments, type StreamResult, type ToolCall, type ToolRound } from "../../../../guest/agent/providers/types.ts";
import { AgentRuntime, MAX_TOOL_ROUNDS } from "../../../../guest/agent/runtime.ts";
import { SessionStore } from "../../../../guest/agent/sessions.ts";
import { resultText, type ToolBox } from "../../../../guest/agent/tools.ts";
import { FakeAnthropic } from "../../../fakes/anthropic.ts";
import { FakeOpenAI } from "../../../fakes/openai.ts";

const openai = new FakeOpenAI({ apiKey: "sk-test" });
const anthropic = new FakeAnthropic({ apiKey: "ak-test" });
afterAll(() => {
  openai.stop();
  anthropic.stop();
});

const timeouts = { connectTimeoutMs: 2000, idleTimeoutMs: 500 };
const spawnSpec = { name: "instance_spawn", description: "Start a child VM", inputSchema: { type: "object", properties: { image: { type: "string" } } } };
const spawnArgs = { image: "@base", command: ["httpd", "-f", "-p", "8080"], expose: ["8080"] };

describe("OpenAiToolCalls", () => {
  it("assembles calls from index/id/name/arguments fragments, in index order", () => {
    const a = new OpenAiToolCalls();
    a.push([{ index: 1, id: "call_b", type: "function", function: { name: "instance_list", arguments: "" } }]);
    a.push([{ index: 0, id: "call_a", type: "function", function: { name: "instance_", arguments: '{"ima' } }]);
    a.push([{ index: 0, function: { name: "spawn", arguments: 'ge":"@b' } }]);
    a.push([{ index: 0, function: { arguments: 'ase"}' } }]);
    a.push(undefined);
    expect(a.calls()).toEqual([
      { id: "call_a", name: "instance_spawn", arguments: '{"image":"@base"}' },
      { id: "call_b", name: "instance_list", arguments: "{}" },
    ]);
  });

  it("a call without a name is a broken stream", () => {
    const a = new OpenAiToolCalls();
    a.push([{ index: 0, function: { arguments: "{}" } }]);
    expect(() => a.calls()).toThrow("without a function name");
  });
});

describe("AnthropicToolCalls", () => {
  it("assembles tool_use blocks from input_json_delta fragments and ignores text blocks", () => {
    const a = new AnthropicToolCalls();
    a.push({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
    a.push({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Starting." } });
    a.push({ type: "content_block_start", index: 1, content_block: { type: "tool_use", id: "toolu_1", name: "instance_spawn", input: {} } });
    a.push({ type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: "" } });
    a.push({ type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '{"image":' } });
    a.push({ type: "content_block_delta", index: 1, delta: { type: "input_json_delta", partial_json: '"@base"}' } });
    a.push({ type: "content_block_start", index: 2, content_block: { type: "tool_use", id: "toolu_2", name: "self_info", input: {} } });
    expect(a.calls()).toEqual([
      { id: "toolu_1", name: "instance_spawn", arguments: '{"image":"@base"}' },
      { id: "toolu_2", name: "self_info", arguments: "{}" },
    ]);
  });

  it("input deltas for a block that is not tool_use are a broken stream", () => {
    const a = new AnthropicToolCalls();
    expect(() => a.push({ type: "content_block_delta", index: 3, delta: { type: "input_json_delta", partial_json: "{" } })).toThrow("not a tool_use block");
  });
});

describe("tool rounds in each vendor's format", () => {
  const round: ToolRound = {
    text: "Let me start it.",
    calls: [{ id: "c1", name: "instance_spawn", arguments: '{"image":"@base"}' }],
    results: [{ id: "c1", content: "refused: image not allowed", isError: true }],
  };
  it("OpenAI: assistant tool_calls message, then role tool results", () => {
    expect(openAiRoundMessages([round])).toEqual([
      { role: "assistant", content: "Let me start it.", tool_calls: [{ id: "c1", type: "function", function: { name: "instance_spawn", arguments: '{"image":"@base"}' } }] },
      { role: "tool", tool_call_id: "c1", content: "error: refused: image not allowed" },
    ]);
  });
  it("Anthropic: assistant text + tool_use blocks, then a user message of tool_result blocks", () => {
    expect(anthropicRoundMessages([round])).toEqual([
      { role: "assistant", content: [{ type: "text", text: "Let me start it." }, { type: "tool_use", id: "c1", name: "instance_spawn", input: { image: "@base" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "c1", content: "refused: image not allowed", is_error: true }] },
    ]);
  });
  it("parseToolArguments accepts only a JSON object", () => {
    expect(parseToolArguments('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseToolArguments("[1]").ok).toBe(false);
    expect(parseToolArguments('{"a":').ok).toBe(false);
  });
  it("resultText joins text content, falls back to structuredContent", () => {
    expect(resultText({ content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] })).toBe("a\nb");
    expect(resultText({ content: [], structuredContent: { ok: true } })).toBe('{"ok":true}');
    expect(resultText({})).toBe("(no output)");
  });
});

describe("providers stream tool calls from the fakes", () => {
  const req: ChatRequest = { system: "sys", messages: [{ role: "user", content: "start a helper" }], tools: [spawnSpec] };

  it("OpenAI: offers tools as functions and returns the streamed call", async () => {
    openai.replies.push({ chunks: ["On it. "], toolCalls: [{ id: "call_x", name: "instance_spawn", arguments: spawnArgs }], argsFragment: 5, fragment: 13 });
    const p = new OpenAiProvider({ apiKey: "sk-test", model: "gpt-4o", baseUrl: openai.baseUrl, ...timeouts });
    const text: string[] = [];
    const result = await p.stream(req, { signal: new AbortController().signal, onText: (t) => text.push(t) });
    expect(text).toEqual(["On it. "]);
    expect(result.toolCalls).toEqual([{ id: "call_x", name: "instance_spawn", arguments: JSON.stringify(spawnArgs) }]);
    expect(openai.requests.at(-1)!.body.tools).toEqual([{ type: "function", function: { name: "instance_spawn", description: "Start a child VM", parameters: spawnSpec.inputSchema } }]);
  });

  it("Anthropic: offers tools with input_schema and returns the streamed call", async () => {
    anthropic.replies.push({ toolCalls: [{ id: "toolu_x", name: "instance_spawn", arguments: spawnArgs }], argsFragment: 4, fragment: 9 });
    const p = new AnthropicProvider({ apiKey: "ak-test", model: "claude-sonnet-4-5", baseUrl: anthropic.baseUrl, maxTokens: 64, ...timeouts });
    const result = await p.stream(req, { signal: new AbortController().signal, onText: () => {} });
    expect(result.toolCalls).toEqual([{ id: "toolu_x", name: "instance_spawn", arguments: JSON.stringify(spawnArgs) }]);
    expect(anthropic.requests.at(-1)!.body.tools).toEqual([{ name: "instance_spawn", description: "Start a child VM", input_schema: spawnSpec.inputSchema }]);
  });

  it("without tools the request has no tools field and a text reply has no calls", async () => {
    openai.replies.push({ chunks: ["hi"] });
    const p = new OpenAiProvider({ apiKey: "sk-test", model: "gpt-4o", baseUrl: openai.baseUrl, ...timeouts });
    expect(await p.stream({ system: "s", messages: [{ role: "user", content: "x" }] }, { signal: new AbortController().signal, onText: () => {} })).toEqual({ toolCalls: [] });
    expect("tools" in openai.requests.at(-1)!.body).toBe(false);
  });
});

describe("AgentRuntime tool loop", () => {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const session = { channel: "test", id: "t" };
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "aegis-tools-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Calls `calls[i]` on request i, then answers with text. */
  class ToolScript implements ChatProvider {
    readonly label = "OpenAI" as const;
    readonly model = "scripted";
    readonly requests: ChatRequest[] = [];
    constructor(private readonly calls: ToolCall[][]) {}
    async stream(req: ChatRequest, { onText }: { onText: (t: string) => void }): Promise<StreamResult> {
      this.requests.push(structuredClone(req));
      const calls = this.calls[this.requests.length - 1];
      if (calls) return { toolCalls: calls };
      onText("done");
      return { toolCalls: [] };
    }
  }

  function run(provider: ChatProvider, tools: ToolBox) {
    const frames: TetherEgressDraft[] = [];
    const rt = new AgentRuntime({ provider, missingKeyHint: "OPENAI_API_KEY", sessions: new SessionStore(dir, 100, quiet), systemPrompt: "sys", contextTurns: 40, contextChars: 24000, maxAttempts: 1, retryBaseMs: 1, emit: (f) => frames.push(f), log: quiet, tools });
    rt.handle({ v: 1, type: "user.message", session, msg_id: "m1", payload: { text: "go" } });
    return { rt, frames };
  }

  const box = (results: Record<string, { content: string; isError: boolean }>): ToolBox & { seen: ToolCall[] } => {
    const seen: ToolCall[] = [];
    return { specs: [spawnSpec], seen, call: async (c) => (seen.push(c), { id: c.id, ...(results[c.name] ?? { content: "?", isError: true }) }) };
  };

  it("runs the calls, sends the round back, ends with the text and keeps only text turns in the session", async () => {
    const tools = box({ instance_spawn: { content: '{"id":"inst-1"}', isError: false } });
    const provider = new ToolScript([[{ id: "c1", name: "instance_spawn", arguments: '{"image":"@base"}' }]]);
    const { rt, frames } = run(provider, tools);
    await Bun.sleep(5);
    await rt.whenIdle();
    expect(tools.seen.map((c) => c.name)).toEqual(["instance_spawn"]);
    expect(provider.requests).toHaveLength(2);
    expect(provider.requests[0]!.tools).toEqual([spawnSpec]);
    expect(provider.requests[1]!.rounds).toEqual([{ text: "", calls: [{ id: "c1", name: "instance_spawn", arguments: '{"image":"@base"}' }], results: [{ id: "c1", content: '{"id":"inst-1"}', isError: false }] }]);
    expect(frames.find((f) => f.type === "assistant.done")!.payload).toEqual({ text: "done" });
    const lines = readFileSync(join(dir, "test_t.jsonl"), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.role, l.content])).toEqual([["user", "go"], ["assistant", "done"]]);
  });

  it(`stops after ${MAX_TOOL_ROUNDS} rounds with tool_rounds_exceeded`, async () => {
    const call = { id: "c", name: "instance_spawn", arguments: "{}" };
    const provider = new ToolScript(Array.from({ length: MAX_TOOL_ROUNDS + 5 }, () => [call]));
    const { rt, frames } = run(provider, box({ instance_spawn: { content: "ok", isError: false } }));
    await Bun.sleep(5);
    await rt.whenIdle();
    expect(provider.requests).toHaveLength(MAX_TOOL_ROUNDS + 1);
    expect((frames.find((f) => f.type === "assistant.done")!.payload as { error?: { code: string } }).error?.code).toBe("tool_rounds_exceeded");
  });
});

describe("config", () => {
  it("reads AEGIS_AGENT_TOOLS and AEGIS_MCP_COMMAND", () => {
    expect(loadAgentConfig({}).tools).toBe("none");
    expect(loadAgentConfig({}).mcpCommand).toEqual(["/usr/bin/aegis-mcp-guest"]);
    const c = loadAgentConfig({ AEGIS_AGENT_TOOLS: "mcp", AEGIS_MCP_COMMAND: " bun /r/src/main.ts  __mcp-guest " });
    expect([c.tools, c.mcpCommand]).toEqual(["mcp", ["bun", "/r/src/main.ts", "__mcp-guest"]]);
    expect(() => loadAgentConfig({ AEGIS_AGENT_TOOLS: "all" })).toThrow('must be "mcp"');
  });
});
