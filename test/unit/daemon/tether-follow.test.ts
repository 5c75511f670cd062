import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../../src/daemon/db.ts";
import { FOLLOW_BUFFER_FRAMES, followTether } from "../../../src/daemon/tether/follow.ts";
import { type StoredFrame, TetherStore } from "../../../src/daemon/tether/store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-follow-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("followTether", () => {
  it("holds at most its buffer for a stopped reader, then delivers every frame once, in order, from the store", async () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    const got: number[] = [];
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    let pendingEmits = 0;
    const emit = async (f: StoredFrame) => {
      got.push(f.seq);
      pendingEmits++;
      await gate;
      pendingEmits--;
    };
    const ac = new AbortController();
    const done = followTether(store, "inst", 0, emit, ac.signal);
    // The reader is stopped on the first frame while 5x the buffer is appended.
    const total = FOLLOW_BUFFER_FRAMES * 5;
    for (let i = 0; i < total; i++) store.append("inst", "egress", { type: "assistant.delta", payload: { text: `t${i}` } });
    await Bun.sleep(10);
    expect(got.length).toBe(1);
    expect(pendingEmits).toBe(1);
    // Unblock the reader for good: everything arrives, each once, in order.
    release();
    gate = Promise.resolve();
    for (let i = 0; i < 200 && got.length < total; i++) await Bun.sleep(5);
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // Then it is live again.
    store.append("inst", "egress", { type: "assistant.done" });
    await Bun.sleep(10);
    expect(got.at(-1)).toBe(total + 1);
    ac.abort();
    await done;
  });

  it("starts with the recent frames when no after_seq is given and never repeats a frame", async () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    for (let i = 0; i < 80; i++) store.append("inst", "egress", { type: "assistant.delta" });
    const got: number[] = [];
    const ac = new AbortController();
    const done = followTether(store, "inst", undefined, async (f) => void got.push(f.seq), ac.signal);
    await Bun.sleep(10);
    store.append("inst", "egress", { type: "assistant.done" });
    await Bun.sleep(10);
    ac.abort();
    await done;
    expect(got).toEqual(Array.from({ length: 51 }, (_, i) => 31 + i));
  });
});
