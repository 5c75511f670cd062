import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { completeFrame, egressFrame, type TetherFrame, type TetherIngress } from "../../../src/api/schema/tether.ts";
import type { AegisTetherClient } from "../../../src/gateway/aegis-client.ts";
import { MAX_RENDERS, RENDER_IDLE_MS, TetherEgress } from "../../../src/gateway/egress.ts";
import { MAX_ANSWER_CHARS, type RenderApi } from "../../../src/gateway/renderer.ts";
import { GatewayState } from "../../../src/gateway/state.ts";
import { TypingIndicator } from "../../../src/gateway/typing.ts";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const session = { channel: "telegram", id: "5" };
const config = { allowedChats: new Set(["5", "6"]) };
/** State in which chat 5 has written to the gateway. */
function stateAt(path: string): GatewayState {
  const state = GatewayState.load(path, "i");
  state.sawChat("5");
  return state;
}
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-egress-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** An in-memory AegisTetherClient that replays a fixed list of frames, then ends. */
class ListClient implements AegisTetherClient {
  readonly afterSeqs: number[] = [];
  constructor(readonly frames: TetherFrame[]) {}
  async resolveSecret(): Promise<string> {
    return "x";
  }
  async postFrame(_f: TetherIngress) {
    return { msg_id: "m", seq: 1 };
  }
  async *stream(afterSeq: number): AsyncIterable<TetherFrame> {
    this.afterSeqs.push(afterSeq);
    for (const f of this.frames) if (f.seq > afterSeq) yield f;
  }
}

const api = () => {
  const sent: string[] = [];
  const a: RenderApi = {
    sendMessage: async (_c, text) => {
      sent.push(text);
      return { message_id: sent.length };
    },
    editMessageText: async (_c, _id, text) => sent.push(`edit:${text}`),
  };
  return { a, sent };
};

function frames(startSeq: number, ts: Date, reply: string, text: string): TetherFrame[] {
  return [egressFrame("assistant.delta", session, { text }, reply), egressFrame("assistant.done", session, { text }, reply)].map((d, i) =>
    completeFrame({ ...d, ts: ts.toISOString() }, { seq: startSeq + i }) as TetherFrame,
  );
}

async function runOnce(egress: TetherEgress): Promise<void> {
  const stop = new AbortController();
  const p = egress.run(stop.signal);
  await Bun.sleep(50);
  stop.abort();
  await p;
  await egress.settled();
}

describe("TetherEgress", () => {
  it("renders only recent frames on a fresh start, and resumes after the saved seq later", async () => {
    const path = join(dir, "state.json");
    const old = frames(1, new Date(Date.now() - 3_600_000), "old", "stale answer");
    const recent = frames(3, new Date(), "new", "fresh answer");
    const client = new ListClient([...old, ...recent]);
    const { a, sent } = api();
    const typing = new TypingIndicator(async () => {}, () => {});
    const state = stateAt(path);
    await runOnce(new TetherEgress({ config, aegis: client, api: a, state, typing, log: quiet, throttleMs: 1 }));
    expect(sent).toEqual(["fresh answer"]);
    expect(state.data.tether_seq).toBe(4);

    client.frames.push(...frames(5, new Date(Date.now() - 3_600_000), "later", "late but wanted"));
    await runOnce(new TetherEgress({ config, aegis: client, api: a, state: GatewayState.load(path, "i"), typing, log: quiet, throttleMs: 1 }));
    expect(client.afterSeqs.at(-1)).toBe(4);
    expect(sent).toEqual(["fresh answer", "late but wanted"]);
    typing.stopAll();
  });

  it("ignores frames of other channels and acks", async () => {
    const other = completeFrame(egressFrame("assistant.delta", { channel: "test", id: "1" }, { text: "x" }, "r"), { seq: 1 }) as TetherFrame;
    const ack = completeFrame(egressFrame("event.ack", session, { msg_id: "r" }, "r"), { seq: 2 }) as TetherFrame;
    const { a, sent } = api();
    const typing = new TypingIndicator(async () => {}, () => {});
    const state = stateAt(join(dir, "s.json"));
    await runOnce(new TetherEgress({ config, aegis: new ListClient([other, ack]), api: a, state, typing, log: quiet, throttleMs: 1 }));
    expect(sent).toEqual([]);
    expect(state.data.tether_seq).toBe(2);
  });

  const seqd = (f: ReturnType<typeof egressFrame>, seq: number) => completeFrame({ ...f, ts: new Date().toISOString() }, { seq }) as TetherFrame;

  it("sends only to allowed chats that wrote to the gateway, and logs refusals in one summary line", async () => {
    const lines: string[] = [];
    const log = { info: () => {}, warn: (m: string) => lines.push(m), error: () => {} };
    const all: TetherFrame[] = [];
    // Chat 6 is allowed but never wrote; 777 is not allowed; 5 is allowed and wrote.
    for (let i = 0; i < 50; i++) all.push(seqd(egressFrame("assistant.done", { channel: "telegram", id: i % 2 ? "6" : "777" }, { text: "spam" }, `s${i}`), i + 1));
    all.push(seqd(egressFrame("status.presence", { channel: "telegram", id: "6" }, { state: "typing" }), 51));
    all.push(...frames(52, new Date(), "ok", "for 5"));
    const typed: string[] = [];
    const typing = new TypingIndicator(async (c) => void typed.push(c), () => {});
    const sentTo: string[] = [];
    const a: RenderApi = {
      sendMessage: async (chat, text) => {
        sentTo.push(`${chat}:${text}`);
        return { message_id: sentTo.length };
      },
      editMessageText: async () => {},
    };
    await runOnce(new TetherEgress({ config, aegis: new ListClient(all), api: a, state: stateAt(join(dir, "s.json")), typing, log, throttleMs: 1 }));
    typing.stopAll();
    expect(sentTo).toEqual(["5:for 5"]);
    expect(typed).toEqual([]);
    expect(lines.filter((l) => l.startsWith("dropped"))).toEqual(['dropped 1 agent frame for chat "777": it is not in telegram.allowed_chats']);
  });

  it("bounds the answers it renders at once and persists", async () => {
    const { a } = api();
    const typing = new TypingIndicator(async () => {}, () => {});
    const state = stateAt(join(dir, "s.json"));
    const many = Array.from({ length: 500 }, (_, i) => seqd(egressFrame("assistant.delta", session, { text: "x" }, `r${i}`), i + 1));
    await runOnce(new TetherEgress({ config, aegis: new ListClient(many), api: a, state, typing, log: quiet, throttleMs: 1 }));
    typing.stopAll();
    const keys = Object.keys(state.data.renders);
    expect(keys.length).toBe(MAX_RENDERS);
    expect(keys.at(-1)).toBe("r499");
  });

  it("forgets answers idle for longer than the expiry, and cuts an endless answer", async () => {
    const path = join(dir, "s.json");
    const state = stateAt(path);
    state.data.renders.stale = { chat_id: "5", text: "half", message_ids: [1], shown: ["half"], updated_at: Date.now() - RENDER_IDLE_MS - 1000 };
    state.save();
    const { a, sent } = api();
    const typing = new TypingIndicator(async () => {}, () => {});
    const chunk = "y".repeat(10_000);
    const flood = Array.from({ length: 20 }, (_, i) => seqd(egressFrame("assistant.delta", session, { text: chunk }, "big"), i + 1));
    const reloaded = GatewayState.load(path, "i");
    await runOnce(new TetherEgress({ config, aegis: new ListClient(flood), api: a, state: reloaded, typing, log: quiet, throttleMs: 1 }));
    typing.stopAll();
    expect(reloaded.data.renders.stale).toBeUndefined();
    expect(reloaded.data.renders.big!.text.length).toBe(MAX_ANSWER_CHARS);
    expect(reloaded.data.renders.big!.text.endsWith("(answer truncated)")).toBe(true);
    expect(sent.length).toBeGreaterThan(0);
  });
});
