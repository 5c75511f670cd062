import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LogLine } from "../../../src/api/schema/tasks.ts";
import { chunkBytes, encodeChunk } from "../../../src/api/log-chunks.ts";
import { LogStore } from "../../../src/daemon/logs/log-store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-logs-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("encodeChunk", () => {
  it("keeps UTF-8 as text and falls back to base64 for other bytes", () => {
    expect(encodeChunk(Buffer.from("héllo"))).toEqual({ text: "héllo" });
    const bin = Buffer.from([0xff, 0x00, 0xc3]);
    const enc = encodeChunk(bin);
    expect(enc.text).toBeUndefined();
    expect(chunkBytes(enc).equals(bin)).toBe(true);
  });
});

describe("LogStore", () => {
  it("replays stored lines, then streams live ones until closed, each exactly once", () => {
    const store = new LogStore(dir);
    store.append("t1", "stdout", Buffer.from("a\n"));
    const seen: (LogLine | null)[] = [];
    store.subscribe("t1", true, (l) => seen.push(l));
    store.append("t1", "stderr", Buffer.from("b\n"));
    store.close("t1");
    store.append("t1", "stdout", Buffer.from("late\n"));
    expect(seen.map((l) => (l && l.type === "output" ? `${l.seq}:${l.stream}:${l.text}` : "end"))).toEqual(["1:stdout:a\n", "2:stderr:b\n", "end"]);
  });
  it("keeps logs across a restart (a new store over the same files) and continues the sequence", () => {
    new LogStore(dir).append("t2", "stdout", Buffer.from("one"));
    const again = new LogStore(dir);
    again.append("t2", "stdout", Buffer.from("two"));
    const seen: string[] = [];
    again.subscribe("t2", false, (l) => seen.push(l && l.type === "output" ? `${l.seq}:${l.text}` : "end"));
    expect(seen).toEqual(["1:one", "2:two", "end"]);
  });
});

describe("LogStore rotation", () => {
  it("rotates past the size limit, keeps the newest output readable and the sequence going", () => {
    const store = new LogStore(dir, 2000);
    for (let i = 1; i <= 60; i++) store.append("r", "stdout", Buffer.from(`line ${i}\n`));
    const seen: number[] = [];
    store.subscribe("r", false, (l) => {
      if (l && l.type === "output") seen.push(l.seq);
    });
    expect(seen.at(-1)).toBe(60);
    expect(seen.length).toBeLessThan(60);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    const reopened = new LogStore(dir, 2000);
    reopened.append("r", "stdout", Buffer.from("after\n"));
    const last: number[] = [];
    reopened.subscribe("r", false, (l) => {
      if (l && l.type === "output") last.push(l.seq);
    });
    expect(last.at(-1)).toBe(61);
  });
});
