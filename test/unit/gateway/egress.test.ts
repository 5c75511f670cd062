import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { completeFrame, egressFrame, type TetherFrame, type TetherIngress } from "../../../src/api/schema/tether.ts";
import type { AegisTetherClient } from "../../../src/gateway/aegis-client.ts";
import { TetherEgress } from "../../../src/gateway/egress.ts";
import type { RenderApi } from "../../../src/gateway/renderer.ts";
import { GatewayState } from "../../../src/gateway/state.ts";
import { TypingIndicator } from "../../../src/gateway/typing.ts";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const session = { channel: "telegram", id: "5" };
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
    const state = GatewayState.load(path, "i");
    await runOnce(new TetherEgress({ aegis: client, api: a, state, typing, log: quiet, throttleMs: 1 }));
    expect(sent).toEqual(["fresh answer"]);
    expect(state.data.tether_seq).toBe(4);

    client.frames.push(...frames(5, new Date(Date.now() - 3_600_000), "later", "late but wanted"));
    await runOnce(new TetherEgress({ aegis: client, api: a, state: GatewayState.load(path, "i"), typing, log: quiet, throttleMs: 1 }));
    expect(client.afterSeqs.at(-1)).toBe(4);
    expect(sent).toEqual(["fresh answer", "late but wanted"]);
    typing.stopAll();
  });

  it("ignores frames of other channels and acks", async () => {
    const other = completeFrame(egressFrame("assistant.delta", { channel: "test", id: "1" }, { text: "x" }, "r"), { seq: 1 }) as TetherFrame;
    const ack = completeFrame(egressFrame("event.ack", session, { msg_id: "r" }, "r"), { seq: 2 }) as TetherFrame;
    const { a, sent } = api();
    const typing = new TypingIndicator(async () => {}, () => {});
    const state = GatewayState.load(join(dir, "s.json"), "i");
    await runOnce(new TetherEgress({ aegis: new ListClient([other, ack]), api: a, state, typing, log: quiet, throttleMs: 1 }));
    expect(sent).toEqual([]);
    expect(state.data.tether_seq).toBe(2);
  });
});
