import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../../src/daemon/db.ts";
import { decodeStored, encodeStored, type StoredFrame, TetherStore } from "../../../src/daemon/tether/store.ts";

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

describe("TetherStore streams", () => {
  it("replays only the 50 most recent frames to a stream without after_seq (the default), then live ones", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    for (let i = 1; i <= 120; i++) store.append("a", "egress", { i });
    const seen: number[] = [];
    const off = store.subscribe("a", undefined, (f) => seen.push(f.seq));
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => 71 + i));
    store.append("a", "egress", { i: 121 });
    off();
    expect(seen.at(-1)).toBe(121);
  });
  it("replays every frame after after_seq=0, across replay pages, with none twice", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    for (let i = 1; i <= 400; i++) store.append("a", "egress", { i });
    const seen: number[] = [];
    store.subscribe("a", 0, (f) => seen.push(f.seq))();
    expect(seen).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    const tail: number[] = [];
    store.subscribe("a", 390, (f) => tail.push(f.seq))();
    expect(tail).toEqual([391, 392, 393, 394, 395, 396, 397, 398, 399, 400]);
    const none: number[] = [];
    store.subscribe("a", 400, (f) => none.push(f.seq))();
    expect(none).toEqual([]);
  });
  it("publishes only egress frames, only to the instance's subscribers, until they unsubscribe", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    const a: number[] = [];
    const b: number[] = [];
    const offA = store.subscribe("a", 0, (f) => a.push(f.seq));
    const offB = store.subscribe("b", 0, (f) => b.push(f.seq));
    store.append("a", "ingress", { type: "user.message" });
    store.append("a", "egress", { type: "assistant.done" });
    store.append("b", "egress", { type: "assistant.done" });
    offA();
    store.append("a", "egress", { type: "assistant.done" });
    offB();
    expect(a).toEqual([2]);
    expect(b).toEqual([1]);
  });
  it("forgets a deleted instance: frames, sequence and subscribers", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    store.append("a", "egress", { x: 1 });
    store.append("b", "egress", { x: 1 });
    const seen: number[] = [];
    store.subscribe("a", 0, (f) => seen.push(f.seq));
    store.deleteInstance("a");
    expect(store.frames("a", "egress")).toEqual([]);
    expect(store.lastSeq("a")).toBe(0);
    expect(store.storedBytes("a")).toBe(0);
    expect(store.append("a", "egress", { x: 2 }).seq).toBe(1);
    expect(seen).toEqual([1]);
    expect(store.frames("b", "egress").length).toBe(1);
  });
  it("returns the stored frame with its seq and keeps the caller's fields", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    const f = store.append("a", "egress", { type: "assistant.done", msg_id: "m1", payload: { n: 1 } });
    expect(f).toEqual({ type: "assistant.done", msg_id: "m1", payload: { n: 1 }, seq: 1 });
    expect(store.frames("a", "egress")).toEqual([f]);
    expect(store.findByMsgId("a", "egress", "m1")).toEqual(f);
    expect(store.findByMsgId("a", "egress", "m2")).toBeNull();
    expect(store.findByMsgId("b", "egress", "m1")).toBeNull();
    store.append("a", "egress", { msg_id: 42 });
    expect(store.findByMsgId("a", "egress", "42")).toBeNull();
  });
  it("reads frames after a sequence with a limit, oldest first, per direction", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")));
    for (let i = 1; i <= 10; i++) store.append("a", i % 2 ? "ingress" : "egress", { i });
    expect(store.frames("a", "egress", 4, 2).map((f) => f.seq)).toEqual([6, 8]);
    expect(store.frames("a", "ingress").map((f) => f.seq)).toEqual([1, 3, 5, 7, 9]);
    expect(store.recent("a", "ingress", 2).map((f) => f.seq)).toEqual([7, 9]);
  });
});

describe("TetherStore retention", () => {
  it("keeps exactly the newest max_frames frames once it prunes", () => {
    const store = new TetherStore(openDatabase(join(dir, "db")), { maxFrames: 10 });
    for (let i = 0; i < 100; i++) store.append("a", "egress", { i });
    expect(store.frames("a", "egress").map((f) => f.seq)).toEqual([91, 92, 93, 94, 95, 96, 97, 98, 99, 100]);
  });
  it("drops frames older than max_age (of every instance) and keeps younger ones", async () => {
    const db = openDatabase(join(dir, "db"));
    const store = new TetherStore(db, { maxAgeMs: 60_000 });
    store.append("a", "egress", { old: true });
    store.append("b", "egress", { old: true });
    db.run("UPDATE tether_frames SET created_at = created_at - 120000");
    store.append("a", "egress", { old: false });
    store.prune("a");
    expect(store.frames("a", "egress").map((f) => f.old)).toEqual([false]);
    expect(store.frames("b", "egress")).toEqual([]);
  });
  it("counts frames already on disk against the byte budget after a restart", () => {
    const path = join(dir, "db");
    const db = openDatabase(path);
    const text = "x".repeat(3000);
    const first = new TetherStore(db, { maxBytes: 100_000 });
    for (let i = 0; i < 30; i++) first.append("a", "egress", { text });
    const before = first.storedBytes("a");
    expect(before).toBeGreaterThan(80_000);
    expect(before).toBeLessThanOrEqual(100_000);
    const again = new TetherStore(db, { maxBytes: 100_000 });
    for (let i = 0; i < 10; i++) again.append("a", "egress", { text });
    expect(again.storedBytes("a")).toBeLessThanOrEqual(100_000);
    expect(again.frames("a", "egress").at(-1)?.seq).toBe(40);
  });
  it("stores JSON up to 4096 bytes as is and deflates anything longer", () => {
    const at = encodeStored(`{"t":"${"a".repeat(4096 - 8)}"}`);
    expect(at.length).toBe(4096);
    expect(at[0]).toBe(0x7b);
    const over = encodeStored(`{"t":"${"a".repeat(4097 - 8)}"}`);
    expect(over[0]).not.toBe(0x7b);
    expect(over.length).toBeLessThan(4096);
    expect(decodeStored(over)).toEqual({ t: "a".repeat(4089) } as unknown as StoredFrame);
    expect(decodeStored(at)).toEqual({ t: "a".repeat(4088) } as unknown as StoredFrame);
    expect(decodeStored('{"seq":3}')).toEqual({ seq: 3 });
  });
});
