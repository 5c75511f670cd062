import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayState, MAX_CHATS, MAX_REPLIES } from "../../../src/gateway/state.ts";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-gwstate-"));
  path = join(dir, "data", "gateway-state.json");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("GatewayState", () => {
  it("starts fresh, then persists the offset and seq across a restart", () => {
    const s = GatewayState.load(path, "my-agent");
    expect([s.data.telegram_offset, s.data.tether_seq]).toEqual([0, 0]);
    s.data.telegram_offset = 100_005;
    s.data.tether_seq = 42;
    s.save();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = GatewayState.load(path, "my-agent");
    expect([again.data.telegram_offset, again.data.tether_seq]).toEqual([100_005, 42]);
  });

  it("forgets the stream position (not the offset) when the instance changes", () => {
    const s = GatewayState.load(path, "a");
    s.data.telegram_offset = 7;
    s.data.tether_seq = 9;
    s.save();
    const other = GatewayState.load(path, "b");
    expect([other.data.telegram_offset, other.data.tether_seq]).toEqual([7, 0]);
  });

  it("bounds the reply map", () => {
    const s = GatewayState.load(path, "a");
    for (let i = 0; i < MAX_REPLIES + 5; i++) s.remember(`m${i}`, { chat_id: "1", message_id: i });
    expect(Object.keys(s.data.replies).length).toBe(MAX_REPLIES);
    expect(s.data.replies.m0).toBeUndefined();
  });

  it("remembers the chats that wrote, bounded by recency (numeric ids included), across a restart", () => {
    const s = GatewayState.load(path, "a");
    // Descending ids: object key order (numeric) differs from recency here.
    for (let i = 0; i < MAX_CHATS + 3; i++) s.sawChat(String(5000 - i), 1_000 + i);
    s.sawChat("-100123", 10_000);
    expect(Object.keys(s.data.chats).length).toBe(MAX_CHATS);
    for (const gone of ["5000", "4999", "4998", "4997"]) expect(s.knowsChat(gone)).toBe(false);
    expect(s.knowsChat(String(5000 - MAX_CHATS - 2))).toBe(true);
    s.save();
    expect(GatewayState.load(path, "a").knowsChat("-100123")).toBe(true);
  });

  it("loads a state file written before chats were recorded", () => {
    GatewayState.load(path, "a").save();
    writeFileSync(path, JSON.stringify({ version: 1, telegram_offset: 3, instance: "a", tether_seq: 4, replies: {}, renders: {} }));
    const s = GatewayState.load(path, "a");
    expect([s.data.telegram_offset, s.data.tether_seq, s.data.chats]).toEqual([3, 4, {}]);
  });

  it("refuses a corrupt file with a remedy", () => {
    GatewayState.load(path, "a").save();
    writeFileSync(path, "{");
    expect(() => GatewayState.load(path, "a")).toThrow("move it away");
  });
});
