import { afterEach, describe, expect, it, jest } from "bun:test";
import { DEFAULT_TIMING } from "../../../src/gateway/gateway.ts";
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

describe("TypingIndicator at its defaults (the spec's 3 s refresh and 2 min hard cap)", () => {
  afterEach(() => jest.useRealTimers());
  it("refreshes every 3 s and goes quiet at 2 minutes, however long the answer takes", () => {
    jest.useFakeTimers();
    const sent: number[] = [];
    const start = Date.now();
    const t = new TypingIndicator(async () => sent.push(Date.now() - start), () => {});
    t.start("chat");
    jest.advanceTimersByTime(2999);
    expect(sent).toEqual([0]);
    jest.advanceTimersByTime(1);
    expect(sent).toEqual([0, 3000]);
    jest.advanceTimersByTime(120_000 - 3000 - 1);
    expect(t.isActive("chat")).toBe(true);
    jest.advanceTimersByTime(1);
    expect(t.isActive("chat")).toBe(false);
    const atCap = sent.length;
    expect(atCap).toBe(40); // t = 0, 3 s, ..., 117 s (the tick due at 120 s is cut by the cap)
    jest.advanceTimersByTime(10 * 60_000);
    expect(sent.length).toBe(atCap);
    t.stop("chat");
  });
  it("is what the gateway uses (src/gateway/main.ts builds Gateway without timing)", () => {
    expect(DEFAULT_TIMING.typing).toEqual({ intervalMs: 3000, capMs: 120_000 });
  });
});
