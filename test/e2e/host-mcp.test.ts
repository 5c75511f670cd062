/**
 * The host MCP server end to end with real VMs (TCG), driven by the MCP
 * SDK's stdio client through `bin/aegis mcp`: `run` (one fresh VM), then one
 * instance reused for everything else: it runs the Agent Kit's aegis-agent
 * (talking to the local OpenAI stand-in) beside a log ticker, so exec, the
 * file tools, logs, the log and tether resources with subscriptions,
 * tether_send / tether_read, expose / unexpose through the router, pause,
 * resume, stop and delete all act on the same VM. Two QEMU boots in all.
 * The tests run in order and build on each other.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { FakeOpenAI } from "../fakes/openai.ts";
import { TestHome } from "../helpers/aegis.ts";
import { connectHostMcp, type HostMcp, textOf } from "../helpers/host-mcp.ts";

const T = 240_000;
let home: TestHome;
let mcp: HostMcp;
let openai: FakeOpenAI;
const updates: string[] = [];

/** The guest reaches the host's 127.0.0.1:PORT as 10.0.2.2:PORT (QEMU user networking). */
const fromGuest = (url: string) => url.replace("127.0.0.1", "10.0.2.2");

beforeAll(async () => {
  openai = new FakeOpenAI({ apiKey: "sk-test" });
  home = new TestHome();
  await home.ok(["up"]);
  // --raw: this file checks the value itself reaches the guest (the default would substitute it, api/egress-secrets.ts).
  await home.ok(["secret", "set", "OPENAI_API_KEY", "sk-test", "--raw"]);
  mcp = await connectHostMcp(home);
  mcp.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
  });
}, T);
afterAll(async () => {
  await mcp?.close();
  await home?.[Symbol.asyncDispose]();
  openai?.stop();
});

type Sc = Record<string, any>;
/** The structured result; a tool error fails the test with its text. */
const sc = (r: { structuredContent?: unknown; isError?: boolean; content?: unknown }) => {
  if (r.isError) throw new Error(`tool error: ${textOf(r as never)}`);
  return r.structuredContent as Sc;
};

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("run", () => {
  it("runs a command in a fresh VM with a named secret, returning both streams, the exit code and a truncation marker", async () => {
    const r = await mcp.call(
      "run",
      { command: ["sh", "-c", "echo out; echo err >&2; echo key-length=${#OPENAI_API_KEY}; head -c 300000 /dev/zero | tr '\\0' a; exit 3"], secrets: ["OPENAI_API_KEY"] },
      T,
    );
    expect(r.isError ?? false).toBe(false);
    const s = sc(r);
    expect(s).toMatchObject({ state: "failed", exit_code: 3, timed_out: false, stderr: "err\n" });
    const kept = 256 * 1024;
    const total = "out\nkey-length=7\n".length + 300000;
    expect(s.stdout.startsWith("out\nkey-length=7\naaa")).toBe(true);
    expect(s.stdout.endsWith(`a\n[truncated: ${total - kept} more bytes]`)).toBe(true);
    expect(Buffer.byteLength(s.stdout)).toBe(kept + `\n[truncated: ${total - kept} more bytes]`.length);
    expect(textOf(r).startsWith("exit code 3\n--- stdout ---\nout\n")).toBe(true);
    expect(JSON.stringify(r)).not.toContain("sk-test");
  }, T);
});

describe("one instance through MCP", () => {
  it("instance_start boots it and instance_list / instance_info show it", async () => {
    const r = await mcp.call(
      "instance_start",
      {
        name: "agent",
        command: ["sh", "-c", "(while true; do echo tick; sleep 1; done) & exec aegis-agent"],
        secrets: ["OPENAI_API_KEY"],
        env: { OPENAI_BASE_URL: fromGuest(openai.baseUrl) },
        network: { mode: "default", rules: [{ action: "allow", target: `host:${new URL(openai.baseUrl).port}` }] },
        pause_after_s: 0,
      },
      T,
    );
    expect(r.isError ?? false).toBe(false);
    expect(sc(r)).toMatchObject({ name: "agent", state: "running", secrets: ["OPENAI_API_KEY"], env_keys: ["OPENAI_BASE_URL"], exposed: [] });
    expect(sc(await mcp.call("instance_list")).instances.map((i: Sc) => [i.name, i.state])).toEqual([["agent", "running"]]);
    expect(sc(await mcp.call("instance_info", { instance: "agent" }))).toMatchObject({ name: "agent", command: ["sh", "-c", expect.any(String)] });
  }, T);

  it("exec returns output and exit code, and kills a command at its timeout", async () => {
    const r = await mcp.call("exec", { instance: "agent", command: ["sh", "-c", "echo hi; echo oops >&2; exit 4"] });
    expect(sc(r)).toEqual({ exit_code: 4, signal: null, timed_out: false, stdout: "hi\n", stderr: "oops\n" });
    const t0 = performance.now();
    const slow = await mcp.call("exec", { instance: "agent", command: ["sleep", "60"], timeout_s: 1 });
    expect(sc(slow)).toMatchObject({ timed_out: true, exit_code: 137 });
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect((await mcp.call("exec", { instance: "agent", command: ["pwd"], cwd: "/tmp" })).structuredContent).toMatchObject({ stdout: "/tmp\n" });
  }, T);

  it("file_write, file_read and file_list move text and bytes, and refuse what they must", async () => {
    const w = await mcp.call("file_write", { instance: "agent", path: "/root/data/hello.txt", content: "héllo\n", mode: "600" });
    expect(sc(w)).toEqual({ path: "/root/data/hello.txt", size: 7 });
    const read = await mcp.call("file_read", { instance: "agent", path: "/root/data/hello.txt" });
    expect(sc(read)).toEqual({ path: "/root/data/hello.txt", size: 7, encoding: "text", content: "héllo\n" });
    expect(textOf(read)).toBe("héllo\n");
    expect(sc(await mcp.call("file_write", { instance: "agent", path: "/root/data/bin", content: Buffer.from([0, 255, 1]).toString("base64"), encoding: "base64" }))).toMatchObject({ size: 3 });
    const asText = await mcp.call("file_read", { instance: "agent", path: "/root/data/bin" });
    expect(asText.isError).toBe(true);
    expect(textOf(asText)).toContain('is not valid UTF-8 text (3 bytes)\nhint: read it with encoding "base64"');
    expect(sc(await mcp.call("file_read", { instance: "agent", path: "/root/data/bin", encoding: "base64" })).content).toBe("AP8B");
    const list = sc(await mcp.call("file_list", { instance: "agent", path: "/root/data" }));
    expect(list.truncated).toBe(false);
    expect(list.entries.map((e: Sc) => [e.name, e.type, e.size, e.mode & 0o777]).sort()).toEqual([
      ["bin", "file", 3, 0o644],
      ["hello.txt", "file", 7, 0o600],
    ]);
    // The guest sees what the tools wrote.
    expect(sc(await mcp.call("exec", { instance: "agent", command: ["cat", "/root/data/hello.txt"] })).stdout).toBe("héllo\n");
    const dir = await mcp.call("file_read", { instance: "agent", path: "/root/data" });
    expect(textOf(dir)).toContain("is a directory");
    await mcp.call("exec", { instance: "agent", command: ["sh", "-c", "head -c 1100000 /dev/zero > /root/big"] });
    const big = await mcp.call("file_read", { instance: "agent", path: "/root/big" });
    expect(big.isError).toBe(true);
    expect(textOf(big)).toContain("/root/big in instance \"agent\" is 1100000 bytes; file_read returns at most 1048576 bytes (1 MiB)\nhint: copy it to the host with 'aegis cp");
    const missing = await mcp.call("file_read", { instance: "agent", path: "/nope" });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toContain("/nope");
  }, T);

  it("logs returns the tail, and the logs resource notifies a subscriber until it unsubscribes", async () => {
    await until("the agent's start line", async () => textOf(await mcp.call("logs", { instance: "agent", tail: 1000 })).includes("agent listening on"));
    await Bun.sleep(1500); // the ticker has written after the agent's start lines
    const tail = sc(await mcp.call("logs", { instance: "agent", tail: 3 }));
    expect(tail.lines).toBe(3);
    expect(tail.text).toContain("tick\n");
    expect(tail.text.split("\n")).toHaveLength(4);
    const uri = "aegis://instances/agent/logs";
    const { resources } = await mcp.client.listResources();
    expect(resources.map((r) => r.uri).sort()).toEqual([uri, "aegis://instances/agent/tether"]);
    const read = await mcp.client.readResource({ uri });
    expect((read.contents[0] as { text: string }).text).toContain("aegis-agent starting");
    await mcp.client.subscribeResource({ uri });
    await until("a logs update", () => updates.includes(uri), 10_000);
    await mcp.client.unsubscribeResource({ uri });
    await Bun.sleep(500); // a notification already in flight may still land
    const seen = updates.filter((u) => u === uri).length;
    await Bun.sleep(2500); // the ticker writes every second
    expect(updates.filter((u) => u === uri).length).toBe(seen);
  }, T);

  it("tether_send reaches the agent and tether_read returns its reply; the tether resource notifies", async () => {
    const uri = "aegis://instances/agent/tether";
    await mcp.client.subscribeResource({ uri });
    openai.replies.push({ chunks: ["Hello", " from", " MCP"] });
    const sent = sc(await mcp.call("tether_send", { instance: "agent", text: "Hi there" }));
    // (Plain checks: toMatchObject with asymmetric matchers rewrites the received object in this Bun.)
    expect([typeof sent.msg_id, typeof sent.seq]).toEqual(["string", "number"]);
    const r = await mcp.call("tether_read", { instance: "agent", after_seq: sent.seq, wait_s: 30 }, 60_000);
    const s = sc(r);
    expect(s).toMatchObject({ done: true, timed_out: false, truncated: false });
    expect(s.frames.map((f: Sc) => [f.type, f.reply_to, f.payload.text, f.session])).toEqual([["assistant.done", sent.msg_id, "Hello from MCP", { channel: "mcp", id: "default" }]]);
    expect(s.next_after_seq).toBeGreaterThan(sent.seq);
    expect(openai.requests.at(-1)!.body).toMatchObject({ messages: expect.arrayContaining([expect.objectContaining({ role: "user", content: "Hi there" })]) });
    await until("a tether update", () => updates.includes(uri), 10_000);
    const read = JSON.parse(((await mcp.client.readResource({ uri })).contents[0] as { text: string }).text) as { frames: Sc[] };
    expect(read.frames.some((f) => f.type === "assistant.done" && f.payload.text === "Hello from MCP")).toBe(true);
    await mcp.client.unsubscribeResource({ uri });
    // No newer reply (only the agent's presence going idle): a bounded wait that ends empty.
    const t0 = performance.now();
    const idle = sc(await mcp.call("tether_read", { instance: "agent", after_seq: s.next_after_seq, wait_s: 1 }));
    expect([idle.frames, idle.timed_out, idle.done]).toEqual([[], true, false]);
    expect(performance.now() - t0).toBeLessThan(5000);
    // With deltas, the whole answer is there from the message's seq on.
    const all = sc(await mcp.call("tether_read", { instance: "agent", after_seq: sent.seq, wait_s: 5, include_deltas: true }));
    expect(all.frames.filter((f: Sc) => f.type === "assistant.delta").map((f: Sc) => f.payload.text).join("")).toBe("Hello from MCP");
    expect(all.frames.some((f: Sc) => f.type === "status.presence")).toBe(true);
  }, T);

  it("expose returns a router URL that serves the guest, and unexpose takes it away", async () => {
    await mcp.call("exec", { instance: "agent", command: ["sh", "-c", "mkdir -p /www && echo hello-web > /www/index.html && httpd -p 8080 -h /www"] });
    const r = sc(await mcp.call("expose", { instance: "agent", port: 8080 }));
    expect([r.instance, r.guest_port, r.public_port]).toEqual(["agent", 8080, null]);
    expect(r.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/agent\/$/);
    const res = await fetch(r.url);
    expect([res.status, await res.text()]).toEqual([200, "hello-web\n"]);
    const host = await fetch(r.url.replace("/agent/", "/"), { headers: { host: new URL(r.host_url).host } });
    expect(await host.text()).toBe("hello-web\n");
    expect(sc(await mcp.call("unexpose", { instance: "agent", port: 8080 }))).toEqual({ instance: "agent", removed: 8080, exposed: [] });
    expect((await fetch(r.url)).status).toBe(404);
    const again = await mcp.call("unexpose", { instance: "agent", port: 8080 });
    expect(textOf(again)).toContain('port 8080 of instance "agent" is not exposed');
  }, T);

  it("pauses, resumes, stops and deletes", async () => {
    expect(sc(await mcp.call("instance_pause", { instance: "agent" })).state).toBe("paused");
    expect(sc(await mcp.call("instance_resume", { instance: "agent" })).state).toBe("running");
    expect(sc(await mcp.call("instance_stop", { instance: "agent" }, T)).state).toBe("stopped");
    expect(sc(await mcp.call("instance_delete", { instance: "agent" }))).toMatchObject({ deleted: true, name: "agent" });
    expect(sc(await mcp.call("instance_list"))).toEqual({ instances: [] });
  }, T);
});
