import { describe, expect, it } from "bun:test";
import { TypingIndicator } from "../../../src/gateway/typing.ts";

describe("TypingIndicator", () => {
  it("sends at once and on every interval until stopped", async () => {
    const sent: string[] = [];
    const t = new TypingIndicator(async (c) => sent.push(c), () => {}, { intervalMs: 30, capMs: 10_000 });
    t.start("1");
    t.start("1");
    await Bun.sleep(100);
    t.stop("1");
    const n = sent.length;
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(5);
    await Bun.sleep(60);
    expect(sent.length).toBe(n);
  });

  it("gives up at the hard cap and stays quiet until stopped", async () => {
    const sent: string[] = [];
    const t = new TypingIndicator(async (c) => sent.push(c), () => {}, { intervalMs: 20, capMs: 70 });
    t.start("1");
    await Bun.sleep(150);
    const n = sent.length;
    expect(n).toBeLessThanOrEqual(5);
    expect(t.isActive("1")).toBe(false);
    t.start("1");
    await Bun.sleep(50);
    expect(sent.length).toBe(n);
    t.stop("1");
    t.start("1");
    expect(sent.length).toBe(n + 1);
    t.stopAll();
  });

  it("reports send failures", async () => {
    const errors: unknown[] = [];
    const t = new TypingIndicator(async () => Promise.reject(new Error("boom")), (_c, e) => errors.push(e), { intervalMs: 1000, capMs: 2000 });
    t.start("9");
    await Bun.sleep(10);
    t.stopAll();
    expect(String(errors[0])).toContain("boom");
  });
});
