import { describe, expect, it } from "bun:test";
import { clip, LOG_TEXT_MAX } from "../../../src/api/untrusted-text.ts";

describe("clip (guest text in log lines)", () => {
  it("keeps short printable text as it is", () => {
    expect(clip("assistant.delta")).toBe("assistant.delta");
    expect(clip("héllo €")).toBe("héllo €");
  });

  it("escapes newlines, control characters, DEL, line separators and bidi overrides", () => {
    expect(clip('a\nb\r{"level":"error"}')).toBe('a\\x0ab\\x0d{"level":"error"}');
    expect(clip("\u0000\u001b[31m\u007f\u0085")).toBe("\\x00\\x1b[31m\\x7f\\x85");
    expect(clip("x\u2028y\u202ez")).toBe("x\\u2028y\\u202ez");
  });

  it("cuts a huge string to the limit before escaping it, saying how much was left out", () => {
    const huge = "A".repeat(4 * 1024 * 1024);
    const out = clip(huge);
    expect(out.length).toBeLessThan(LOG_TEXT_MAX + 40);
    expect(out).toEndWith(`...(+${huge.length - LOG_TEXT_MAX} chars)`);
    const controls = clip("\u0001".repeat(1_000_000), 50);
    expect(controls.length).toBeLessThan(50 + 40);
    expect(controls).toMatch(/^(\\x01)+\.\.\.\(\+999950 chars\)$/); // never half an escape
  });

  it("names non-strings by type instead of serialising them", () => {
    expect(clip({ a: "x".repeat(1e6) })).toBe("(object)");
    expect(clip([1, 2])).toBe("(array)");
    expect(clip(42)).toBe("42");
    expect(clip(undefined)).toBe("undefined");
  });
});
