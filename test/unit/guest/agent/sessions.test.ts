import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SessionStore, safeName } from "../../../../guest/agent/sessions.ts";

let dir: string;
const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-sessions-"));
  warnings.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("SessionStore", () => {
  const session = { channel: "telegram", id: "123456" };

  it("stores one turn a line at <channel>_<id>.jsonl", async () => {
    const store = new SessionStore(dir, 100, log);
    await store.append(session, { role: "user", content: "hi", ts: "2026-01-01T00:00:00.000Z" });
    await store.append(session, { role: "assistant", content: "hello\nthere", ts: "2026-01-01T00:00:01.000Z" });
    const file = join(dir, "telegram_123456.jsonl");
    expect(store.fileFor(session)).toBe(file);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { role: "user", content: "hi", ts: "2026-01-01T00:00:00.000Z" },
      { role: "assistant", content: "hello\nthere", ts: "2026-01-01T00:00:01.000Z" },
    ]);
  });

  it("loads a session from disk after a restart (a new store)", async () => {
    await new SessionStore(dir, 100, log).append(session, { role: "user", content: "remember me", ts: "t1" });
    const again = new SessionStore(dir, 100, log);
    expect(await again.load(session)).toEqual([{ role: "user", content: "remember me", ts: "t1" }]);
  });

  it("keeps only the newest turns in memory", async () => {
    const store = new SessionStore(dir, 2, log);
    for (const c of ["a", "b", "c"]) await store.append(session, { role: "user", content: c, ts: "t" });
    expect((await store.load(session)).map((t) => t.content)).toEqual(["b", "c"]);
    expect((await new SessionStore(dir, 2, log).load(session)).map((t) => t.content)).toEqual(["b", "c"]);
  });

  it("skips a torn last line with a warning instead of failing", async () => {
    const store = new SessionStore(dir, 100, log);
    await store.append(session, { role: "user", content: "ok", ts: "t" });
    appendFileSync(store.fileFor(session), '{"role":"assistant","content":"cut');
    expect((await new SessionStore(dir, 100, log).load(session)).map((t) => t.content)).toEqual(["ok"]);
    expect(warnings.join()).toContain("skipping unreadable turn");
  });

  it("an unknown session is empty", async () => {
    expect(await new SessionStore(join(dir, "missing"), 10, log).load(session)).toEqual([]);
  });
});

describe("safeName", () => {
  it("keeps telegram ids and escapes separators and path characters", () => {
    expect(safeName("-100123")).toBe("-100123");
    expect(safeName("a/b")).toBe("a%2Fb");
    expect(safeName("a_b")).toBe("a%5Fb");
    expect(safeName("..")).toBe("..");
    expect(safeName("é")).toBe("%C3%A9");
  });
});
