/**
 * Tool calling end to end without a VM: the agent runs on the host with
 * AEGIS_AGENT_TOOLS=mcp and starts the real `aegis-mcp-guest` (from source,
 * `bun src/main.ts __mcp-guest`), whose bridge socket is a fake host. The
 * fake model asks for `instance_spawn`; the call must reach the bridge, its
 * result must go back to the model, and the model's final text must arrive
 * as `assistant.done`.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentProcess, HarnessClient } from "../fakes/agent-process.ts";
import { FakeAnthropic } from "../fakes/anthropic.ts";
import { FakeOpenAI } from "../fakes/openai.ts";
import { FakeHost, HostRefusal, sampleChild, sampleHandlers } from "../unit/guest/mcp/fake-host.ts";

const repo = join(import.meta.dir, "..", "..");
const mcpCommand = `${process.execPath} ${join(repo, "src", "main.ts")} __mcp-guest`;
const dir = mkdtempSync(join(tmpdir(), "aegis-agent-tools-"));
const openai = new FakeOpenAI({ apiKey: "sk-test" });
const anthropic = new FakeAnthropic({ apiKey: "ak-test" });
const host = new FakeHost({
  ...sampleHandlers(),
  "mcp.instance_stop": () => {
    throw new HostRefusal(-32010, "instance \"other\" is not a child of this instance", { code: "not_found", hint: "list your children with instance_list" });
  },
});
afterAll(() => {
  openai.stop();
  anthropic.stop();
  host.stop();
  rmSync(dir, { recursive: true, force: true });
});

const common = (sessions: string) => ({
  AEGIS_SESSIONS_DIR: sessions,
  AEGIS_LLM_RETRY_BASE_MS: "50",
  AEGIS_LLM_IDLE_TIMEOUT_MS: "5000",
  AEGIS_AGENT_TOOLS: "mcp",
  AEGIS_MCP_COMMAND: mcpCommand,
  AEGIS_MCP_BRIDGE: host.path,
});

const spawnArgs = { image: "@base", command: ["httpd", "-f", "-p", "8080"], name: "helper", expose: [8080] };

describe("aegis-agent tools over MCP (OpenAI)", () => {
  const sessions = join(dir, "openai");
  let agent: AgentProcess;
  let harness: HarnessClient;
  beforeAll(async () => {
    agent = await AgentProcess.start({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: openai.baseUrl, ...common(sessions) });
    harness = await HarnessClient.connect(agent.port);
  });
  afterAll(async () => {
    harness?.close();
    await agent?.stop();
  });

  it("offers the MCP tools, runs instance_spawn through the bridge and answers with the final text", async () => {
    const before = openai.requests.length;
    const hostBefore = host.received.length;
    openai.replies.push({ toolCalls: [{ id: "call_spawn", name: "instance_spawn", arguments: spawnArgs }], argsFragment: 6, fragment: 17 }, { chunks: ["Started ", "helper."] });
    const id = harness.say("s1", "start a helper web server");
    const done = await harness.done(id, 20_000);
    expect(done.payload).toEqual({ text: "Started helper." });
    expect(harness.framesFor(id).filter((f) => f.type === "assistant.delta").map((f) => f.payload.text)).toEqual(["Started ", "helper."]);

    expect(host.received.slice(hostBefore)).toEqual([{ id: expect.anything(), method: "mcp.instance_spawn", params: spawnArgs }]);

    const [first, second] = openai.requests.slice(before).map((r) => r.body);
    const names = first.tools.map((t: any) => t.function.name);
    expect(names).toEqual(["self_info", "instance_spawn", "instance_list", "instance_stop", "expose_port", "unexpose_port", "keepalive_acquire", "keepalive_release"]);
    const spawn = first.tools.find((t: any) => t.function.name === "instance_spawn");
    expect(spawn.type).toBe("function");
    expect(spawn.function.description).toContain("child Aegis instance");
    expect(spawn.function.parameters.type).toBe("object");
    expect(Object.keys(spawn.function.parameters.properties)).toContain("image");

    const tail = second.messages.slice(-2);
    expect(tail[0]).toEqual({ role: "assistant", content: null, tool_calls: [{ id: "call_spawn", type: "function", function: { name: "instance_spawn", arguments: JSON.stringify(spawnArgs) } }] });
    expect(tail[1].role).toBe("tool");
    expect(tail[1].tool_call_id).toBe("call_spawn");
    expect(JSON.parse(tail[1].content)).toMatchObject({ id: sampleChild.id, handle: "helper" });

    const lines = readFileSync(join(sessions, "test_s1.jsonl"), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.role, l.content])).toEqual([
      ["user", "start a helper web server"],
      ["assistant", "Started helper."],
    ]);
  });

  it("a host refusal goes back to the model as an error result", async () => {
    const before = openai.requests.length;
    openai.replies.push({ toolCalls: [{ id: "call_stop", name: "instance_stop", arguments: { instance: "other" } }] }, { chunks: ["I may not stop it."] });
    const id = harness.say("s2", "stop other");
    expect((await harness.done(id, 20_000)).payload).toEqual({ text: "I may not stop it." });
    const result = openai.requests[before + 1]!.body.messages.at(-1);
    expect(result.role).toBe("tool");
    expect(result.content).toStartWith("error: ");
    expect(result.content).toContain("not a child of this instance");
  });
});

describe("aegis-agent tools over MCP (Anthropic)", () => {
  const sessions = join(dir, "anthropic");
  let agent: AgentProcess;
  let harness: HarnessClient;
  beforeAll(async () => {
    agent = await AgentProcess.start({ ANTHROPIC_API_KEY: "ak-test", ANTHROPIC_BASE_URL: anthropic.baseUrl, ...common(sessions) });
    harness = await HarnessClient.connect(agent.port);
  });
  afterAll(async () => {
    harness?.close();
    await agent?.stop();
  });

  it("streams a tool_use call, sends the tool_result back and ends with the text", async () => {
    const before = anthropic.requests.length;
    const hostBefore = host.received.length;
    anthropic.replies.push({ chunks: ["Spawning. "], toolCalls: [{ id: "toolu_spawn", name: "instance_spawn", arguments: spawnArgs }], argsFragment: 5 }, { chunks: ["Done."] });
    const id = harness.say("a1", "start a helper");
    const done = await harness.done(id, 20_000);
    expect(done.payload).toEqual({ text: "Spawning. Done." });
    expect(host.received.slice(hostBefore).map((r) => [r.method, r.params])).toEqual([["mcp.instance_spawn", spawnArgs]]);
    const [first, second] = anthropic.requests.slice(before).map((r) => r.body);
    const spawn = first.tools.find((t: any) => t.name === "instance_spawn");
    expect(spawn.input_schema.type).toBe("object");
    expect(typeof spawn.description).toBe("string");
    const [assistant, user] = second.messages.slice(-2);
    expect(assistant).toEqual({ role: "assistant", content: [{ type: "text", text: "Spawning. " }, { type: "tool_use", id: "toolu_spawn", name: "instance_spawn", input: spawnArgs }] });
    expect(user.role).toBe("user");
    expect(user.content).toHaveLength(1);
    expect(user.content[0]).toMatchObject({ type: "tool_result", tool_use_id: "toolu_spawn", is_error: false });
    expect(JSON.parse(user.content[0].content)).toMatchObject({ id: sampleChild.id });
  });
});
