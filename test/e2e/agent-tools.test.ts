/**
 * Issue 8 item 4 end to end (TCG): an agent in a VM, on the Agent Kit (which
 * enables MCP tools and grants spawn of the base rootfs), is told by the
 * model (the local OpenAI stand-in, scripted to call tools) to start a helper
 * VM serving HTTP, which the host then reaches through the router, and later
 * to stop and delete it. The tool calls travel agent -> aegis-mcp-guest ->
 * harness -> aegisd, which checks the kit's capabilities.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { FakeOpenAI } from "../fakes/openai.ts";
import { repoRoot, TestHome } from "../helpers/aegis.ts";
import { busyboxLayer, makeImage } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const T = 240_000;
let reg: TestRegistry;
let home: TestHome;
let openai: FakeOpenAI;
let sock: string;

beforeAll(async () => {
  reg = await startRegistry();
  await pushImage({ base: reg.base, repo: "e2e/tools-agent" }, makeImage([await busyboxLayer()], { env: ["PATH=/bin:/sbin"] }), "v1");
  openai = new FakeOpenAI({ apiKey: "sk-test" });
  home = new TestHome();
  sock = join(home.dir, "aegisd.sock");
  await home.ok(["up"]);
  await home.ok(["kit", "install", join(repoRoot, "kits/agent.yaml")]);
  await home.ok(["secret", "set", "OPENAI_API_KEY", "sk-test"]);
  await home.ok([
    "instance", "start", "--kit", "agent", "--name", "boss", "--image", `${reg.host}/e2e/tools-agent:v1`,
    "--secret", "OPENAI_API_KEY", "--env", `OPENAI_BASE_URL=${openai.baseUrl.replace("127.0.0.1", "10.0.2.2")}`, "--allow", `host:${new URL(openai.baseUrl).port}`, "--pause-after", "0",
  ]);
}, T);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
  openai?.stop();
});

/** Send a user message and wait for its assistant.done. */
async function ask(text: string): Promise<{ type: string; payload: { text: string; error?: unknown } }> {
  const res = await fetch("http://aegis/v1/instances/boss/tether", {
    unix: sock,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ v: 1, type: "user.message", session: { channel: "test", id: "tools" }, payload: { text } }),
  });
  expect(res.status).toBe(202);
  const { seq } = (await res.json()) as { seq: number };
  const stream = await fetch(`http://aegis/v1/instances/boss/tether/stream?after_seq=${seq}`, { unix: sock, signal: AbortSignal.timeout(180_000) });
  const reader = stream.body!.getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("tether stream ended before assistant.done");
    buf += new TextDecoder().decode(value);
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) {
      const f = l ? JSON.parse(l) : null;
      if (f?.type === "assistant.done") {
        await reader.cancel();
        return f;
      }
    }
  }
}

describe("an agent using the MCP tools", () => {
  it("starts a helper VM that the host reaches through the router, then stops and deletes it", async () => {
    const httpd = "mkdir -p /www && echo from-helper > /www/index.html && exec httpd -f -p 8080 -h /www";
    openai.replies.push(
      { toolCalls: [{ name: "instance_spawn", arguments: { name: "web", command: ["sh", "-c", httpd], expose: [8080] } }] },
      { chunks: ["Started ", "web."] },
    );
    const done = await ask("Start a web helper please");
    expect(done.payload.text).toBe("Started web.");
    const toolsOffered = (openai.requests.at(-2)!.body as { tools: { function: { name: string } }[] }).tools.map((t) => t.function.name);
    expect(toolsOffered).toContain("instance_spawn");
    const toolResult = (openai.requests.at(-1)!.body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === "tool");
    // A child lives in its parent's namespace: `web` spawned by `boss` is `web.boss` (issue 13, name squatting).
    expect(JSON.parse(toolResult!.content)).toMatchObject({ handle: "web.boss", state: "running", expose: [{ guest_port: 8080, reachable: true }] });

    const list = JSON.parse((await home.ok(["instance", "list", "--json"])).stdout) as { handle: string; parent_id: string | null }[];
    expect(list.find((i) => i.handle === "web.boss")?.parent_id).toMatch(/^inst-/);
    const { router_url } = JSON.parse((await home.ok(["status", "--json"])).stdout);
    expect(await (await fetch(`${router_url}/web.boss/index.html`)).text()).toBe("from-helper\n");

    openai.replies.push({ toolCalls: [{ name: "instance_stop", arguments: { instance: "web", delete: true } }] }, { chunks: ["Stopped."] });
    expect((await ask("Stop it")).payload.text).toBe("Stopped.");
    const after = JSON.parse((await home.ok(["instance", "list", "--json"])).stdout) as { handle: string }[];
    expect(after.map((i) => i.handle)).toEqual(["boss"]);
  }, T);
});
