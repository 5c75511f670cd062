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

describe("TetherStore bounds", () => {
  it("keeps an instance within its byte budget, dropping the oldest frames first", () => {
    const db = openDatabase(join(dir, "db"));
    const store = new TetherStore(db, { maxBytes: 200_000 });
    const text = "lorem ipsum ".repeat(300); // 3.6 KB of JSON: stored as is (below the compression threshold)
    for (let i = 0; i < 300; i++) store.append("a", "egress", { type: "assistant.delta", payload: { text: `${i} ${text}` } });
    store.append("b", "egress", { type: "assistant.done" });
    expect(store.storedBytes("a")).toBeLessThanOrEqual(200_000);
    const left = store.frames("a", "egress");
    expect(left.at(-1)?.seq).toBe(300); // the newest are kept
    expect(left.length).toBeGreaterThan(40);
    expect(left.length).toBeLessThan(60);
    expect(left.map((f) => f.seq)).toEqual(Array.from({ length: left.length }, (_, i) => 301 - left.length + i)); // contiguous: only the oldest went
    expect(store.frames("b", "egress").length).toBe(1); // another instance's frames are untouched
  });

  it("stores a large frame deflated and reads it back unchanged (control characters no longer cost 6 bytes each)", () => {
    const db = openDatabase(join(dir, "db"));
    const store = new TetherStore(db);
    const text = "\u0001".repeat(170_000); // ~1 MiB as JSON
    store.append("a", "egress", { type: "assistant.done", payload: { text } });
    store.append("a", "egress", { type: "assistant.delta", payload: { text: "small" } });
    expect(JSON.stringify({ text }).length).toBeGreaterThan(1_000_000);
    expect(store.storedBytes("a")).toBeLessThan(20_000);
    const [big, small] = store.frames("a", "egress");
    expect((big!.payload as { text: string }).text).toBe(text);
    expect((small!.payload as { text: string }).text).toBe("small");
    const raw = db.query("SELECT frame FROM tether_frames WHERE seq = 2").get() as { frame: Uint8Array };
    expect(Buffer.from(raw.frame).toString()).toStartWith("{"); // small frames stay readable JSON
  });

  it("reads frames stored as TEXT before frames became BLOBs", () => {
    const db = openDatabase(join(dir, "db"));
    db.query("INSERT INTO tether_frames (instance_id, seq, direction, msg_id, frame, created_at) VALUES ('a', 1, 'egress', NULL, $f, $now)").run({ f: JSON.stringify({ type: "assistant.done", seq: 1 }), now: Date.now() });
    expect(new TetherStore(db).frames("a", "egress").map((f) => f.type)).toEqual(["assistant.done"]);
  });

  it("replays the recent frames of a stream without after_seq through LIMIT, and pages a replay after a sequence", () => {
    const db = openDatabase(join(dir, "db"));
    const store = new TetherStore(db);
    for (let i = 0; i < 1000; i++) store.append("a", i % 2 ? "egress" : "ingress", { i });
    const recent: number[] = [];
    store.subscribe("a", undefined, (f) => recent.push(f.seq), 50)();
    expect(recent).toEqual(Array.from({ length: 50 }, (_, i) => 902 + 2 * i));
    const all: number[] = [];
    store.subscribe("a", 0, (f) => all.push(f.seq))();
    expect(all.length).toBe(500); // 200-row pages, no frame twice or missing
    expect(new Set(all).size).toBe(500);
    expect(all.at(-1)).toBe(1000);
    // The recent replay is one LIMIT query: SQLite's plan walks the primary key backwards, no full sort into memory.
    const plan = db.query("EXPLAIN QUERY PLAN SELECT frame FROM tether_frames WHERE instance_id = 'a' AND direction = 'egress' ORDER BY seq DESC LIMIT 50").all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join(" ")).not.toContain("TEMP B-TREE");
  });
});
