/**
 * Slow log followers (issue 13, finding 4): a follower that stops reading
 * must not make aegisd queue the live log in memory. It drops back to
 * reading pages from disk by seq, and when it reads again it gets every
 * line exactly once, in order, then the live ones and the end.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApiDeps } from "../../../src/daemon/api/deps.ts";
import { logStreamResponse } from "../../../src/daemon/api/tasks.ts";
import { LogStore } from "../../../src/daemon/logs/log-store.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-follow-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A LogStore that counts the live lines it hands to listeners and the pages read from disk. */
class CountingStore extends LogStore {
  pages = 0;
  override linesAfter(id: string, afterSeq: number, maxBytes: number) {
    this.pages++;
    return super.linesAfter(id, afterSeq, maxBytes);
  }
}

/** Read the rest of an NDJSON body into parsed lines, after `head` already read. */
async function readRest(reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> }, head = ""): Promise<Array<{ type: string; seq?: number }>> {
  let text = head;
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  return text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

describe("a log follower that stops reading", () => {
  it("catches up from disk and gets every line once, in order, then the end", async () => {
    const store = new CountingStore(dir, 64 * 1024 * 1024);
    const deps = { logs: store } as unknown as ApiDeps;
    const line = "x".repeat(4000);
    store.append("t", "stdout", Buffer.from(`${line}\n`));
    const res = logStreamResponse(deps, "t", true, () => ({ type: "end", state: "succeeded", exit_code: 0 }) as never);
    const body = res.body!.getReader();
    const first = await body.read(); // the follower is live, then stops reading
    expect(new TextDecoder().decode(first.value)).toContain('"seq":1,');
    // 20 MiB of output while nobody reads: without a bound, all of it would sit in the response queue.
    for (let i = 0; i < 5000; i++) store.append("t", "stdout", Buffer.from(`${i} ${line}\n`));
    const pagesBefore = store.pages;
    store.close("t");
    const lines = await readRest(body, new TextDecoder().decode(first.value));
    const seqs = lines.filter((l) => l.type === "output").map((l) => l.seq);
    expect(seqs).toEqual(Array.from({ length: 5001 }, (_, i) => i + 1));
    expect(seqs.at(-1)).toBe(5001);
    expect(store.pages).toBeGreaterThan(pagesBefore + 10); // the backlog came back from disk, page by page
    expect(lines.at(-1)?.type).toBe("end");
  });

  it("replays a large stored log a page at a time, not all at once", async () => {
    const store = new CountingStore(dir, 64 * 1024 * 1024);
    const deps = { logs: store } as unknown as ApiDeps;
    for (let i = 0; i < 2000; i++) store.append("r", "stdout", Buffer.from(`${i} ${"y".repeat(4000)}\n`));
    store.close("r");
    const res = logStreamResponse(deps, "r", false, null);
    const reader = res.body!.getReader();
    const first = await reader.read();
    await Bun.sleep(20);
    expect(store.pages).toBeLessThanOrEqual(2); // 8 MiB stored, but only about one page read ahead of the client
    const seqs = (await readRest(reader, new TextDecoder().decode(first.value))).filter((l) => l.type === "output").map((l) => l.seq!);
    expect(seqs).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(seqs.at(-1)).toBe(2000);
  });
});
