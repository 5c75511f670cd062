/**
 * The gateway as a process, against the Telegram Bot API fake and a stand-in
 * aegisd (the three endpoints on a Unix socket). The stand-in's `onIngress`
 * plays the agent by emitting egress frames the way the runtime does.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { egressFrame, type TetherIngressFrame } from "../../src/api/schema/tether.ts";
import { type AegisdStore, FakeAegisd, newStore } from "../fakes/aegisd.ts";
import { FakeTelegram } from "../fakes/telegram.ts";

const ALLOWED = 1001;
const OTHER_ALLOWED = 1002;
const STRANGER = 2002;

let home: string;
let tg: FakeTelegram;
let daemon: FakeAegisd;
let store: AegisdStore;
let gateway: GatewayProcess | undefined;

/** The gateway child process. */
class GatewayProcess {
  stderr = "";
  readonly exited: Promise<number>;
  constructor(readonly proc: ReturnType<typeof Bun.spawn>) {
    const dec = new TextDecoder();
    const drain = async (s: ReadableStream<Uint8Array>) => {
      for await (const c of s) this.stderr += dec.decode(c);
    };
    this.exited = Promise.all([drain(proc.stderr as ReadableStream<Uint8Array>), drain(proc.stdout as ReadableStream<Uint8Array>)]).then(() => proc.exited);
  }
  static start(env: Record<string, string> = {}): GatewayProcess {
    return new GatewayProcess(
      Bun.spawn([process.execPath, join(import.meta.dir, "..", "fakes", "run-gateway.ts")], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, AEGIS_HOME: home, TELEGRAM_API_BASE: tg.baseUrl, ...env },
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
  }
  async stop(): Promise<number> {
    this.proc.kill("SIGTERM");
    return await this.exited;
  }
}

/** Wait until `pred` holds (polling). */
async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\ngateway log:\n${gateway?.stderr}`);
    await Bun.sleep(25);
  }
}

/** Play the agent for one user message: ack, presence, deltas `gapMs` apart, done, idle. */
async function answer(frame: TetherIngressFrame, chunks: string[], gapMs: number, error?: { code: string; message: string }): Promise<void> {
  const s = frame.session;
  const r = frame.msg_id;
  daemon.emit(egressFrame("event.ack", s, { msg_id: r }, r));
  daemon.emit(egressFrame("status.presence", s, { state: "thinking" }, r));
  for (const [i, c] of chunks.entries()) {
    await Bun.sleep(gapMs);
    if (i === 0) daemon.emit(egressFrame("status.presence", s, { state: "typing" }, r));
    daemon.emit(egressFrame("assistant.delta", s, { text: c }, r));
  }
  daemon.emit(egressFrame("assistant.done", s, error ? { text: chunks.join(""), error } : { text: chunks.join("") }, r));
  daemon.emit(egressFrame("status.presence", s, { state: "idle" }, r));
}

function startDaemon(): void {
  daemon = new FakeAegisd(join(home, "aegisd.sock"), "my-agent", { TELEGRAM_BOT_TOKEN: tg.token }, store);
}

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "ag-gw-"));
  tg = new FakeTelegram();
  store = newStore();
  startDaemon();
  writeFileSync(
    join(home, "gateway.json"),
    JSON.stringify({ telegram: { bot_token_secret: "TELEGRAM_BOT_TOKEN", instance: "my-agent", allowed_chats: [ALLOWED, String(OTHER_ALLOWED)], poll_timeout: 2 } }),
  );
});

afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
  daemon.stop();
  tg.stop();
  rmSync(home, { recursive: true, force: true });
});

const sendsTo = (chat: number) => tg.callsOf("sendMessage").filter((c) => c.params.chat_id === chat);
const editsTo = (chat: number) => tg.callsOf("editMessageText").filter((c) => c.params.chat_id === chat);
const typingTo = (chat: number) => tg.callsOf("sendChatAction").filter((c) => c.params.chat_id === chat);

describe("aegis-gateway", () => {
  it("posts a user.message with the sender's identity, then renders the stream as a reply, throttled edits and a final edit", async () => {
    daemon.onIngress = (f) => void answer(f, ["Hello", " there", ", ", "John", "! How", " can", " I", " help?"], 450);
    gateway = GatewayProcess.start();
    const userMsg = tg.pushMessage({ chatId: ALLOWED, text: "Hi bot", from: { id: 9, first_name: "John", last_name: "Doe", username: "johndoe" } });
    await until(() => daemon.ingress.length === 1, "the frame to reach aegisd");
    expect(daemon.ingress[0]).toMatchObject({
      v: 1,
      type: "user.message",
      session: { channel: "telegram", id: String(ALLOWED) },
      payload: { text: "Hi bot", user: { id: "9", username: "johndoe", name: "John Doe" } },
    });
    await until(() => editsTo(ALLOWED).some((c) => c.params.text === "Hello there, John! How can I help?"), "the final edit");
    await Bun.sleep(300);

    const sends = sendsTo(ALLOWED);
    expect(sends.length).toBe(1);
    expect(sends[0]!.params.text.startsWith("Hello")).toBe(true);
    expect(sends[0]!.params.reply_parameters.message_id).toBe(userMsg);
    const edits = editsTo(ALLOWED);
    expect(edits.length).toBeGreaterThanOrEqual(2);
    expect(edits.length).toBeLessThan(8);
    const times = [sends[0]!.at, ...edits.map((e) => e.at)];
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
    const sent = tg.sent.find((m) => m.chat_id === String(ALLOWED))!;
    expect(sent.text).toBe("Hello there, John! How can I help?");
    expect(edits.every((e) => e.params.message_id === sent.message_id)).toBe(true);

    const typing = typingTo(ALLOWED);
    expect(typing.length).toBeGreaterThanOrEqual(2);
    expect(typing.every((t) => t.params.action === "typing")).toBe(true);
    expect(typing[0]!.at).toBeLessThanOrEqual(sends[0]!.at);
    const gaps = typing.slice(1).map((t, i) => t.at - typing[i]!.at);
    expect(gaps.every((g) => g >= 2800)).toBe(true);
    const doneAt = edits.at(-1)!.at;
    await Bun.sleep(3200);
    expect(typingTo(ALLOWED).filter((t) => t.at > doneAt).length).toBe(0);
    expect(gateway.stderr).not.toContain(tg.token);
  }, 30_000);

  it("ignores chats that are not allowed, and logs them", async () => {
    gateway = GatewayProcess.start();
    tg.pushMessage({ chatId: STRANGER, text: "let me in" });
    const ok = tg.pushMessage({ chatId: OTHER_ALLOWED, text: "hello" });
    await until(() => daemon.ingress.length === 1, "the allowed message");
    expect(daemon.ingress[0]!.session.id).toBe(String(OTHER_ALLOWED));
    expect(ok).toBeGreaterThan(0);
    await until(() => gateway!.stderr.includes(`ignoring a message from chat ${STRANGER}`), "the log line");
    expect(sendsTo(STRANGER).length + typingTo(STRANGER).length).toBe(0);
  });

  it("lets a hostile agent answer only allowed chats that wrote to the bot, and summarises what it dropped", async () => {
    daemon.onIngress = (f) => {
      if (f.type !== "user.message") return;
      // The agent addresses a stranger and an allowed chat that never wrote, many times, then answers.
      for (let i = 0; i < 20; i++) {
        for (const id of [String(STRANGER), String(OTHER_ALLOWED)]) {
          daemon.emit(egressFrame("status.presence", { channel: "telegram", id }, { state: "typing" }));
          daemon.emit(egressFrame("assistant.done", { channel: "telegram", id }, { text: `spam ${i}` }, `spam-${id}-${i}`));
        }
      }
      void answer(f, ["real answer"], 10);
    };
    gateway = GatewayProcess.start();
    tg.pushMessage({ chatId: ALLOWED, text: "hi" });
    await until(() => tg.sent.some((m) => m.text === "real answer"), "the real answer");
    await Bun.sleep(300);
    expect(sendsTo(STRANGER).length + typingTo(STRANGER).length).toBe(0);
    expect(sendsTo(OTHER_ALLOWED).length + typingTo(OTHER_ALLOWED).length).toBe(0);
    const drops = gateway.stderr.split("\n").filter((l) => l.includes("dropped"));
    expect(drops).toEqual([`aegis-gateway: warning: dropped 1 agent frame for chat "${STRANGER}": it is not in telegram.allowed_chats`]);
  });

  it("splits answers longer than 4096 characters and shows errors", async () => {
    const long = `${"a".repeat(3000)}\n${"b".repeat(3000)}`;
    daemon.onIngress = (f) => {
      if (f.type !== "user.message") return;
      if (f.payload.text === "long") void answer(f, [long], 10);
      else void answer(f, ["partial"], 10, { code: "stream_interrupted", message: "OpenAI stream broke" });
    };
    gateway = GatewayProcess.start();
    tg.pushMessage({ chatId: ALLOWED, text: "long" });
    await until(() => tg.sent.filter((m) => m.chat_id === String(ALLOWED)).length === 2, "two messages");
    expect(tg.sent.map((m) => m.text)).toEqual(["a".repeat(3000), "b".repeat(3000)]);
    tg.pushMessage({ chatId: ALLOWED, text: "fail" });
    await until(() => tg.sent.some((m) => m.text === "partial\n\n⚠️ OpenAI stream broke"), "the error note");
  });

  it("keeps the Telegram offset and the tether seq across a restart: nothing lost, nothing twice", async () => {
    const pending: TetherIngressFrame[] = [];
    daemon.onIngress = (f) => {
      if (f.type === "user.message" && f.payload.text === "first") void answer(f, ["one"], 10);
      else pending.push(f);
    };
    gateway = GatewayProcess.start();
    tg.pushMessage({ chatId: ALLOWED, text: "first" });
    await until(() => tg.sent.some((m) => m.text === "one"), "the first answer");
    tg.pushMessage({ chatId: ALLOWED, text: "second" });
    await until(() => pending.length === 1, "the second message");
    await gateway.stop();

    const state = JSON.parse(readFileSync(join(home, "data", "gateway-state.json"), "utf8"));
    expect(state.telegram_offset).toBeGreaterThan(0);
    expect(state.tether_seq).toBeGreaterThan(0);

    // While the gateway is down: the agent answers, and a new Telegram message arrives.
    await answer(pending[0]!, ["two"], 10);
    tg.pushMessage({ chatId: ALLOWED, text: "third" });
    daemon.onIngress = (f) => void answer(f, ["three"], 10);

    gateway = GatewayProcess.start();
    await until(() => tg.sent.some((m) => m.text === "two") && tg.sent.some((m) => m.text === "three"), "both answers after the restart");
    await Bun.sleep(500);
    expect(daemon.ingress.map((f) => (f.type === "user.message" ? f.payload.text : f.type))).toEqual(["first", "second", "third"]);
    expect(tg.sent.map((m) => m.text)).toEqual(["one", "two", "three"]);
    expect(daemon.streamRequests.at(-1)).toBe(state.tether_seq);
  }, 30_000);

  it("reconnects to a restarted aegisd and replays what it missed", async () => {
    daemon.onIngress = (f) => void answer(f, ["before"], 10);
    gateway = GatewayProcess.start();
    tg.pushMessage({ chatId: ALLOWED, text: "hi" });
    await until(() => tg.sent.some((m) => m.text === "before"), "the first answer");
    const first = daemon.ingress[0]!;
    daemon.stop();
    await Bun.sleep(300);
    startDaemon();
    // Emitted before the gateway has reconnected: it must arrive through the replay.
    await answer({ ...first, msg_id: "late" }, ["after restart"], 10);
    await until(() => tg.sent.some((m) => m.text === "after restart"), "the replayed answer", 15_000);
    expect(tg.sent.filter((m) => m.text === "before").length).toBe(1);
  }, 30_000);

  it("fails with a hint when the token secret does not exist", async () => {
    writeFileSync(join(home, "gateway.json"), JSON.stringify({ telegram: { bot_token_secret: "MISSING", instance: "my-agent", allowed_chats: ["*"] } }));
    const g = GatewayProcess.start();
    expect(await g.exited).toBe(1);
    expect(g.stderr).toContain("secret 'MISSING' (telegram.bot_token_secret) does not exist");
    expect(g.stderr).toContain("hint: store the bot token: aegis secret set MISSING");
  });

  it("reports a missing config with the spec's wording and exit code 2", async () => {
    rmSync(join(home, "gateway.json"));
    const g = GatewayProcess.start();
    expect(await g.exited).toBe(2);
    expect(g.stderr).toContain(`no gateway config (create ${join(home, "gateway.json")} to enable)`);
  });
});
