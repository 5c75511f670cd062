import { describe, expect, it } from "bun:test";
import { splitMessage } from "../../../src/gateway/split.ts";

describe("splitMessage", () => {
  it("leaves short texts alone", () => {
    expect(splitMessage("hello")).toEqual(["hello"]);
    expect(splitMessage("")).toEqual([""]);
    expect(splitMessage("x".repeat(4096))).toEqual(["x".repeat(4096)]);
  });

  it("splits at the Telegram limit, preferring newlines, then spaces", () => {
    const para = `${"a".repeat(3000)}\n${"b".repeat(3000)}`;
    expect(splitMessage(para)).toEqual(["a".repeat(3000), "b".repeat(3000)]);
    const words = `${"a".repeat(3000)} ${"b".repeat(3000)}`;
    expect(splitMessage(words)).toEqual(["a".repeat(3000), "b".repeat(3000)]);
    const solid = "c".repeat(9000);
    const parts = splitMessage(solid);
    expect(parts.map((p) => p.length)).toEqual([4096, 4096, 808]);
    expect(parts.join("")).toBe(solid);
  });

  it("never cuts a surrogate pair", () => {
    const text = `${"x".repeat(4095)}😀${"y".repeat(10)}`;
    const parts = splitMessage(text);
    expect(parts[0]).toBe("x".repeat(4095));
    expect(parts[1]!.startsWith("😀")).toBe(true);
    expect(parts.every((p) => p.length <= 4096)).toBe(true);
  });

  it("keeps earlier pieces stable while the text grows", () => {
    const base = `${"a".repeat(3000)}\n${"b".repeat(2000)}`;
    const first = splitMessage(base)[0];
    expect(splitMessage(`${base}${"c".repeat(5000)}`)[0]).toBe(first);
  });
});
