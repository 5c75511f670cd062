/**
 * The Agent Kit end to end with real VMs (TCG): `aegis-agent` injected into
 * a busybox-static image (no libc, PATH without /usr/bin), talking to the
 * local OpenAI and Anthropic stand-ins on the host's loopback (10.0.2.2 from
 * the guest); the spec's curl round trip over the daemon socket, wake on
 * message from paused and stopped, cancel, sessions kept on the host
 * workspace across a cold boot, the Telegram gateway rendering a streamed
 * answer from a paused agent, and Anthropic in a glibc image (whose own
 * loader and libraries are used).
 *
 * One agent instance ("my-agent") is reused across the file; the tests run
 * in order and build on each other. QEMU launches: my-agent's first boot and
 * its cold boot after `instance stop` (a workspace VM is never snapshotted),
 * then, once my-agent is stopped, the glibc image's template VM and the
 * "claude" instance restored from it (never more than two QEMUs at once).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { sharedLibraries } from "../../src/vmm/assets/ldd.ts";
import { FakeAnthropic } from "../fakes/anthropic.ts";
import { FakeOpenAI } from "../fakes/openai.ts";
import { FakeTelegram } from "../fakes/telegram.ts";
import { aegisBin, repoRoot, TestHome } from "../helpers/aegis.ts";
import { busyboxLayer, makeImage, makeLayer } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const T = 180_000;
type Frame = { type: string; seq: number; msg_id: string; reply_to?: string; session: { channel: string; id: string }; payload: any };

let reg: TestRegistry;
let home: TestHome;
let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let telegram: FakeTelegram;
let image: string;
let glibcImage: string;
let sock: string;

/** Timings of the steps, printed at the end for the record. */
const timings: [string, number][] = [];
async function timed<R>(label: string, fn: () => Promise<R>): Promise<R> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timings.push([label, Math.round(performance.now() - t0)]);
  }
}

/** The guest reaches the host's 127.0.0.1:PORT as 10.0.2.2:PORT once the instance has --allow host:PORT. */
const fromGuest = (url: string) => url.replace("127.0.0.1", "10.0.2.2");

beforeAll(async () => {
  reg = await startRegistry();
  // busybox-static only: no glibc, no loader, and a PATH without /usr/bin.
  await pushImage({ base: reg.base, repo: "e2e/agent-base" }, makeImage([await busyboxLayer()], { env: ["PATH=/bin:/sbin"] }), "v1");
  image = `${reg.host}/e2e/agent-base:v1`;
  // busybox plus the host's glibc, laid out like Debian (/lib64/ld-linux-x86-64.so.2 is an absolute symlink).
  const libs = await sharedLibraries(aegisBin());
  const loader = libs.find((l) => l.includes("/ld-linux"))!;
  const glibc = makeLayer([
    { path: "lib/", type: "Directory" },
    { path: "lib/x86_64-linux-gnu/", type: "Directory" },
    { path: "lib64/", type: "Directory" },
    { path: "lib64/ld-linux-x86-64.so.2", type: "SymbolicLink", linkpath: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", mode: 0o777 },
    { path: "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", content: readFileSync(realpathSync(loader)), mode: 0o755 },
    ...libs.filter((l) => l !== loader).map((l) => ({ path: `lib/x86_64-linux-gnu/${basename(l)}`, content: readFileSync(realpathSync(l)), mode: 0o755 })),
  ]);
  await pushImage({ base: reg.base, repo: "e2e/agent-glibc" }, makeImage([await busyboxLayer(), glibc]), "v1");
  glibcImage = `${reg.host}/e2e/agent-glibc:v1`;
  openai = new FakeOpenAI({ apiKey: "sk-test" });
  anthropic = new FakeAnthropic({ apiKey: "sk-ant-test" });
  telegram = new FakeTelegram();
  home = new TestHome();
  sock = join(home.dir, "aegisd.sock");
  await home.ok(["up"]);
  await home.ok(["kit", "install", join(repoRoot, "kits/agent.yaml")]);
  await home.ok(["secret", "set", "OPENAI_API_KEY", "sk-test"]);
}, T);

afterAll(async () => {
  if (timings.length > 0) process.stderr.write(`agent e2e timings (ms):\n${timings.map(([l, ms]) => `  ${String(ms).padStart(6)}  ${l}`).join("\n")}\n`);
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
  openai?.stop();
  anthropic?.stop();
  telegram?.stop();
});

async function post(instance: string, frame: Record<string, unknown>): Promise<{ msg_id: string; seq: number }> {
  const res = await fetch(`http://aegis/v1/instances/${instance}/tether`, { unix: sock, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ v: 1, ...frame }) });
  const body = await res.text();
  if (res.status !== 202) throw new Error(`POST tether: ${res.status} ${body}`);
  return JSON.parse(body);
}

/** Read the tether stream after `afterSeq` until `until` matches a frame (included). */
async function frames(instance: string, afterSeq: number, until: (f: Frame) => boolean, onFrame?: (f: Frame) => void): Promise<Frame[]> {
  const res = await fetch(`http://aegis/v1/instances/${instance}/tether/stream?after_seq=${afterSeq}`, { unix: sock, signal: AbortSignal.timeout(120_000) });
  expect(res.status).toBe(200);
  const out: Frame[] = [];
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`tether stream ended before the expected frame; got ${JSON.stringify(out)}`);
      buf += dec.decode(value, { stream: true });
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        if (!l) continue;
        const f = JSON.parse(l) as Frame;
        out.push(f);
        onFrame?.(f);
        if (until(f)) return out;
      }
    }
  } finally {
    await reader.cancel();
  }
}

const doneFor = (msgId: string) => (f: Frame) => f.type === "assistant.done" && f.reply_to === msgId;

/** Run curl (the spec's client) and return its stdout; throws on failure. */
async function curl(args: string[]): Promise<string> {
  const p = Bun.spawn(["curl", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`curl ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}

const idleFor = (msgId: string) => (f: Frame) => f.type === "status.presence" && f.payload.state === "idle" && f.reply_to === msgId;

/** Send a user message and collect the frames answering it, up to its `assistant.done`. */
async function ask(instance: string, text: string, session = { channel: "test", id: "1" }): Promise<Frame[]> {
  const { msg_id, seq } = await post(instance, { type: "user.message", session, payload: { text } });
  return (await frames(instance, seq, doneFor(msg_id))).filter((f) => f.reply_to === msg_id);
}

async function state(name: string): Promise<string> {
  return JSON.parse((await home.ok(["instance", "info", name, "--json"])).stdout).state;
}

const lastRequest = () => openai.requests.at(-1)!.body as { messages: { role: string; content: string }[]; stream: boolean };
const sessionFile = () => join(home.dir, "data/workspaces/agentws/sessions/test_1.jsonl");

describe("agent kit end to end", () => {
  it("starts the kit's agent in a busybox-static image and logs the spec's start lines", async () => {
    const started = await timed("instance start --kit agent (boot + pull)", () =>
      home.ok([
        "instance", "start", "--kit", "agent", "--name", "my-agent", "--image", image,
        "--secret", "OPENAI_API_KEY", "--env", `OPENAI_BASE_URL=${fromGuest(openai.baseUrl)}`, "--allow", `host:${new URL(openai.baseUrl).port}`,
        "--workspace", "agentws", "--pause-after", "0",
      ]),
    );
    expect(started.stderr).toMatch(/\nInstance my-agent \(inst-[0-9a-f]+\) running\n$/);
    const info = JSON.parse((await home.ok(["instance", "info", "my-agent", "--json"])).stdout);
    expect(info).toMatchObject({ handle: "my-agent", kit: "agent", command: ["aegis-agent"] });
    const deadline = Date.now() + 60_000;
    let logs = "";
    await timed("agent start lines in the log", async () => {
      while (Date.now() < deadline && !logs.includes("agent listening on")) {
        logs = (await home.ok(["logs", "my-agent"])).stdout;
        if (!logs.includes("agent listening on")) await Bun.sleep(100);
      }
    });
    expect(logs).toContain("aegis-agent starting\nLLM provider: OpenAI\nagent listening on 127.0.0.1:7778\n");
    // The agent runs with the image's PATH, which lacks /usr/bin: the injected binary is found anyway.
    const env = await home.ok(["exec", "my-agent", "--", "sh", "-c", 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = aegis-agent ] && tr "\\0" "\\n" < $p/environ | grep ^PATH=; done; ls /usr/bin/aegis-agent /usr/bin/aegis-harness /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6']);
    expect(env.stdout).toBe("PATH=/bin:/sbin\n/lib/x86_64-linux-gnu/libc.so.6\n/lib64/ld-linux-x86-64.so.2\n/usr/bin/aegis-agent\n/usr/bin/aegis-harness\n");
  }, T);

  it("answers the spec's curl round trip over the socket with ack, presence, deltas and done, and sends the [name]: prefix", async () => {
    openai.replies.push({ chunks: ["Hello", " from", " the fake!"] });
    const t0 = performance.now();
    // The spec's commands, verbatim but for the socket path, the user and ?after_seq.
    const message = { v: 1, type: "user.message", session: { channel: "test", id: "1" }, payload: { text: "Hello!", user: { name: "Ann" } } };
    const posted = await curl(["-sS", "-X", "POST", "--unix-socket", sock, "http://aegis/v1/instances/my-agent/tether", "-H", "Content-Type: application/json", "-d", JSON.stringify(message)]);
    const { msg_id, seq } = JSON.parse(posted) as { msg_id: string; seq: number };
    const stream = Bun.spawn(["curl", "-sS", "-N", "--unix-socket", sock, `http://aegis/v1/instances/my-agent/tether/stream?after_seq=${seq}`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const got: Frame[] = [];
    const reader = stream.stdout.getReader();
    let buf = "";
    try {
      while (!got.some(idleFor(msg_id))) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`curl stream ended: ${JSON.stringify(got)}`);
        buf += new TextDecoder().decode(value);
        const lines = buf.split("\n");
        buf = lines.pop()!;
        for (const l of lines) if (l) got.push(JSON.parse(l));
      }
    } finally {
      stream.kill();
      await Promise.all([reader.cancel(), new Response(stream.stderr).text(), stream.exited]);
    }
    timings.push(["message -> assistant.done (running, curl)", Math.round(performance.now() - t0)]);
    const mine = got.filter((f) => f.reply_to === msg_id);
    expect(mine.map((f) => f.type)).toEqual(["event.ack", "status.presence", "status.presence", "assistant.delta", "assistant.delta", "assistant.delta", "assistant.done", "status.presence"]);
    expect(mine.filter((f) => f.type === "status.presence").map((f) => f.payload.state)).toEqual(["thinking", "typing", "idle"]);
    expect(mine.filter((f) => f.type === "assistant.delta").map((f) => f.payload.text)).toEqual(["Hello", " from", " the fake!"]);
    expect(mine.find((f) => f.type === "assistant.done")!.payload).toEqual({ text: "Hello from the fake!" });
    expect(mine.every((f) => f.seq > seq && f.session.channel === "test" && f.session.id === "1")).toBe(true);
    const req = lastRequest();
    expect(req.stream).toBe(true);
    expect(req.messages.at(-1)).toEqual({ role: "user", content: "[Ann]: Hello!" });
    expect(openai.requests.at(-1)!.headers.authorization).toBe("Bearer sk-test");
  }, T);

  it("answers the spec's literal curl -N .../tether/stream (no after_seq) with the recent frames first, then live ones", async () => {
    // Verbatim but for the socket path: no after_seq, so the daemon replays its most recent frames.
    const stream = Bun.spawn(["curl", "-sS", "-N", "--unix-socket", sock, "http://aegis/v1/instances/my-agent/tether/stream"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const got: Frame[] = [];
    const reader = stream.stdout.getReader();
    let buf = "";
    const readUntil = async (pred: () => boolean) => {
      while (!pred()) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`curl stream ended: ${JSON.stringify(got)}`);
        buf += new TextDecoder().decode(value);
        const lines = buf.split("\n");
        buf = lines.pop()!;
        for (const l of lines) if (l) got.push(JSON.parse(l));
      }
    };
    try {
      // The previous test's answer is the most recent: its closing idle presence must arrive without asking.
      await readUntil(() => got.some((f) => f.type === "status.presence" && f.payload.state === "idle"));
      const replayed = got.length;
      expect(replayed).toBeLessThanOrEqual(50);
      expect(got.map((f) => f.seq)).toEqual([...got.map((f) => f.seq)].sort((a, b) => a - b));
      expect(got.some((f) => f.type === "assistant.done" && f.payload.text === "Hello from the fake!")).toBe(true);
      // Then live: a new message's frames follow on the same stream.
      openai.replies.push({ chunks: ["live"] });
      const { msg_id } = await post("my-agent", { type: "user.message", session: { channel: "test", id: "1" }, payload: { text: "again" } });
      await readUntil(() => got.some(idleFor(msg_id)));
      expect(got.slice(replayed).filter((f) => f.reply_to === msg_id).map((f) => f.type)).toContain("assistant.done");
    } finally {
      stream.kill();
      await Promise.all([reader.cancel(), new Response(stream.stderr).text(), stream.exited]);
    }
  }, T);

  it("gives a debug shell in a kit-configured VM with --kit agent -- sh (the command replaced, the kit's env and capabilities kept)", async () => {
    await home.ok(["instance", "start", "--kit", "agent", "--name", "kit-shell", "--image", image, "--pause-after", "0", "--", "sh", "-c", "exec sleep 600"]);
    try {
      const info = JSON.parse((await home.ok(["instance", "info", "kit-shell", "--json"])).stdout);
      expect(info).toMatchObject({ kit: "agent", command: ["sh", "-c", "exec sleep 600"] });
      expect(info.capabilities).toMatchObject({ spawn: true, max_depth: 1, max_children: 2, allowed_images: ["@base"] });
      const r = await home.ok(["exec", "kit-shell", "--", "sh", "-c", "echo $AEGIS_AGENT_TOOLS; for p in /proc/[0-9]*; do cat $p/comm; done | grep -c '^aegis-agent$' || true"]);
      expect(r.stdout).toBe("mcp\n0\n");
    } finally {
      await home.ok(["instance", "delete", "kit-shell"]);
    }
  }, T);

  it("wakes a paused agent on a message and answers it", async () => {
    expect((await home.ok(["instance", "pause", "my-agent"])).stderr).toBe("Instance my-agent paused\n");
    expect(await state("my-agent")).toBe("paused");
    const got = await timed("message -> assistant.done (paused)", () => ask("my-agent", "are you awake?"));
    expect(got.find((f) => f.type === "assistant.done")!.payload).toEqual({ text: "You said: are you awake?" });
    expect(await state("my-agent")).toBe("running");
  }, T);

  it("cancels an answer mid-stream with control.cancel", async () => {
    openai.replies.push({ chunks: ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight "], delayMs: 400 });
    const session = { channel: "test", id: "1" };
    const { msg_id, seq } = await post("my-agent", { type: "user.message", session, payload: { text: "count slowly" } });
    let cancel: Promise<unknown> | undefined;
    const got = await frames("my-agent", seq, doneFor(msg_id), (f) => {
      if (!cancel && f.type === "assistant.delta" && f.reply_to === msg_id) cancel = post("my-agent", { type: "control.cancel", session, payload: { msg_id } });
    });
    await cancel;
    const done = got.find((f) => f.type === "assistant.done")!;
    expect(done.payload.error).toEqual({ code: "cancelled", message: "cancelled" });
    expect(done.payload.text.length).toBeGreaterThan(0);
    expect(done.payload.text).not.toContain("eight");
  }, T);

  it("keeps the session on the host workspace across a stop and a cold boot, and sends the history next time", async () => {
    const file = sessionFile();
    expect(existsSync(file)).toBe(true);
    const before = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(before[0]).toMatchObject({ role: "user", content: "[Ann]: Hello!" });
    expect(before[1]).toMatchObject({ role: "assistant", content: "Hello from the fake!" });
    expect((await home.ok(["instance", "stop", "my-agent"])).stderr).toBe("Instance my-agent stopped\n");
    expect(await state("my-agent")).toBe("stopped");
    const got = await timed("message -> assistant.done (stopped: cold boot)", () => ask("my-agent", "remember me?"));
    expect(got.find((f) => f.type === "assistant.done")!.payload).toEqual({ text: "You said: remember me?" });
    const msgs = lastRequest().messages;
    expect(msgs[0]).toEqual({ role: "system", content: "You are a helpful assistant." });
    expect(msgs.slice(1, 3)).toEqual([
      { role: "user", content: "[Ann]: Hello!" },
      { role: "assistant", content: "Hello from the fake!" },
    ]);
    expect(msgs.at(-1)).toEqual({ role: "user", content: "remember me?" });
    const after = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(after.length).toBe(before.length + 2);
  }, T);

  it("renders a Telegram message to a paused agent as sendMessage, edits with the final text, and typing", async () => {
    await home.ok(["secret", "set", "TELEGRAM_BOT_TOKEN", telegram.token]);
    writeFileSync(join(home.dir, "gateway.json"), JSON.stringify({ telegram: { bot_token_secret: "TELEGRAM_BOT_TOKEN", instance: "my-agent", allowed_chats: ["*"], poll_timeout: 5 } }));
    const gateway = Bun.spawn([aegisBin(), "__gateway"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home.dir, TELEGRAM_API_BASE: telegram.baseUrl },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const output = Promise.all([new Response(gateway.stdout).text(), new Response(gateway.stderr).text()]);
    try {
      // Wait for the gateway's first getUpdates (it is polling), then pause the agent.
      const ready = Date.now() + 30_000;
      while (telegram.callsOf("getUpdates").length === 0 && Date.now() < ready) await Bun.sleep(50);
      expect(telegram.callsOf("getUpdates").length).toBeGreaterThan(0);
      await home.ok(["instance", "pause", "my-agent"]);
      openai.replies.push({ chunks: ["Hi ", "Ann, ", "nice to ", "meet you."], delayMs: 300 });
      const t0 = Date.now();
      telegram.pushMessage({ chatId: 5551, text: "hello bot", from: { id: 42, first_name: "Ann", username: "ann" } });
      const final = "Hi Ann, nice to meet you.";
      await timed("telegram update -> final edit (paused)", async () => {
        while (Date.now() - t0 < 90_000) {
          const msg = telegram.sent.find((s) => s.chat_id === "5551");
          if (msg?.text === final) return;
          await Bun.sleep(50);
        }
        throw new Error(`no final text; sent: ${JSON.stringify(telegram.sent)}; calls: ${JSON.stringify(telegram.calls.map((c) => c.method))}`);
      });
      const sends = telegram.callsOf("sendMessage").filter((c) => String(c.params.chat_id) === "5551");
      expect(sends.length).toBe(1);
      expect(telegram.callsOf("editMessageText").length).toBeGreaterThan(0);
      expect(telegram.callsOf("editMessageText").at(-1)!.params.text).toBe(final);
      expect(telegram.callsOf("sendMessage")[0]!.at).toBeLessThanOrEqual(telegram.callsOf("editMessageText")[0]!.at);
      expect(telegram.callsOf("sendChatAction").some((c) => c.params.action === "typing" && String(c.params.chat_id) === "5551")).toBe(true);
      expect(lastRequest().messages.at(-1)).toEqual({ role: "user", content: "[Ann]: hello bot" });
      expect(existsSync(join(home.dir, "data/workspaces/agentws/sessions/telegram_5551.jsonl"))).toBe(true);
    } finally {
      gateway.kill("SIGTERM");
      await gateway.exited;
      const [out, err] = await output;
      if (gateway.exitCode !== 0) process.stderr.write(`gateway stdout:\n${out}\ngateway stderr:\n${err}\n`);
    }
    expect(gateway.exitCode).toBe(0);
  }, T);

  it("uses Anthropic when ANTHROPIC_API_KEY is set, in a glibc image whose own loader and libraries are used", async () => {
    await home.ok(["instance", "stop", "my-agent"]);
    await home.ok(["secret", "set", "ANTHROPIC_API_KEY", "sk-ant-test"]);
    anthropic.replies.push({ chunks: ["Claude ", "here."] });
    await timed("instance start (Anthropic, glibc image: template boot + restore)", () =>
      home.ok(["instance", "start", "--kit", "agent", "--name", "claude", "--image", glibcImage, "--secret", "ANTHROPIC_API_KEY", "--env", `ANTHROPIC_BASE_URL=${fromGuest(anthropic.baseUrl)}`, "--allow", `host:${new URL(anthropic.baseUrl).port}`, "--pause-after", "0"]),
    );
    const got = await timed("message -> assistant.done (Anthropic, agent starting)", () => ask("claude", "who are you?", { channel: "test", id: "2" }));
    const done = got.find((f) => f.type === "assistant.done")!;
    expect(done.payload).toEqual({ text: "Claude here." });
    const req = anthropic.requests.at(-1)!;
    expect(req.headers["x-api-key"]).toBe("sk-ant-test");
    expect(req.body).toMatchObject({ stream: true, system: "You are a helpful assistant.", messages: [{ role: "user", content: "who are you?" }] });
    expect((await home.ok(["logs", "claude"])).stdout).toContain("LLM provider: Anthropic\n");
    // Only the binaries were bound in; the image's loader and libraries were left alone.
    const mounts = (await home.ok(["exec", "claude", "--", "busybox", "cat", "/proc/mounts"])).stdout;
    expect(mounts).toContain(" /usr/bin/aegis-agent ");
    expect(mounts).toContain(" /usr/bin/aegis-harness ");
    expect(mounts).not.toContain("ld-linux");
    expect(mounts).not.toContain("x86_64-linux-gnu");
    await home.ok(["instance", "delete", "claude"]);
  }, T);
});
