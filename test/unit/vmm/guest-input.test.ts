import { describe, expect, it } from "bun:test";
import { RepeatReporter, TokenBucket } from "../../../src/vmm/guest-input.ts";

describe("TokenBucket", () => {
  it("allows a burst, then the sustained rate", () => {
    let t = 0;
    const b = new TokenBucket(10, 5, () => t);
    const burst = Array.from({ length: 8 }, () => b.take());
    expect(burst).toEqual([true, true, true, true, true, false, false, false]);
    t += 1000; // one second refills 10 tokens, capped at the burst of 5
    expect(Array.from({ length: 6 }, () => b.take()).filter(Boolean).length).toBe(5);
    t += 100; // 0.1 s: one token
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
  });
});

describe("RepeatReporter", () => {
  it("logs the first event of a kind, then one summary per window", async () => {
    const lines: [string, Record<string, unknown>][] = [];
    const r = new RepeatReporter((msg, fields) => lines.push([msg, fields]), "inst-x", 300);
    for (let i = 0; i < 10_000; i++) r.report("invalid", "invalid frames", "invalid frame", { error: "bad" });
    r.report("other", "other things", "other thing");
    expect(lines).toEqual([
      ["invalid frame", { source: "inst-x", error: "bad" }],
      ["other thing", { source: "inst-x" }],
    ]);
    await Bun.sleep(400);
    expect(lines[2]).toEqual(["9999 more invalid frames from inst-x in the last 0 s", { source: "inst-x", count: 9999 }]);
    expect(lines.length).toBe(3); // "other" had no repeats: no summary
    r.report("invalid", "invalid frames", "invalid frame");
    r.flush();
    expect(lines.length).toBe(4); // still in a summarising window: counted, then flushed as a summary
    expect(lines[3]![1].count).toBe(1);
  });
});
