import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../../src/daemon/db.ts";
import { type StoredFrame, TetherStore } from "../../../src/daemon/tether/store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-tether-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("TetherStore", () => {
  it("numbers frames per instance across both directions and replays egress after a sequence, then live", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    expect(store.append("a", "ingress", { type: "user.message" }).seq).toBe(1);
    store.append("a", "egress", { type: "assistant.delta", payload: { text: "x" } });
    store.append("b", "egress", { type: "assistant.done" });
    store.append("a", "egress", { type: "assistant.done" });
    const seen: StoredFrame[] = [];
    const off = store.subscribe("a", 2, (f) => seen.push(f));
    store.append("a", "egress", { type: "status.presence" });
    store.append("a", "ingress", { type: "user.message" });
    off();
    store.append("a", "egress", { type: "assistant.delta" });
    expect(seen.map((f) => [f.seq, f.type])).toEqual([
      [3, "assistant.done"],
      [4, "status.presence"],
    ]);
  });
  it("survives a reopen of the database and keeps counting", () => {
    const path = join(dir, "db");
    const db = openDatabase(path);
    new TetherStore(db).append("a", "egress", { type: "assistant.done" });
    db.close();
    const again = new TetherStore(openDatabase(path));
    expect(again.append("a", "egress", { type: "assistant.done" }).seq).toBe(2);
    expect(again.frames("a", "egress").map((f) => f.seq)).toEqual([1, 2]);
  });
  it("prunes by count", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")), { maxFrames: 10, maxAgeMs: 1e9 });
    for (let i = 0; i < 105; i++) store.append("a", "egress", { i });
    const left = store.frames("a", "egress");
    expect(left.length).toBeLessThanOrEqual(15);
    expect(left.at(-1)?.seq).toBe(105);
  });
});

describe("TetherStore sequence", () => {
  it("never reuses a sequence number after pruning everything, and finds frames by msg_id", async () => {
    const store = new TetherStore(openDatabase(join(dir, "db")), { maxFrames: 10, maxAgeMs: 0 });
    for (let i = 0; i < 100; i++) store.append("a", "egress", { i });
    await Bun.sleep(5);
    store.prune("a");
    expect(store.frames("a", "egress")).toEqual([]);
    expect(store.append("a", "ingress", { msg_id: "m-1" }).seq).toBe(101);
    expect(store.findByMsgId("a", "ingress", "m-1")?.seq).toBe(101);
    expect(store.findByMsgId("a", "egress", "m-1")).toBeNull();
  });
});
