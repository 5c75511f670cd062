import { describe, expect, it } from "bun:test";
import { contextWindow, prefixed } from "../../../../guest/agent/context.ts";

const turn = (role: "user" | "assistant", content: string) => ({ role, content });

describe("contextWindow", () => {
  const turns = [turn("user", "aaaa"), turn("assistant", "bbbb"), turn("user", "cccc"), turn("assistant", "dddd"), turn("user", "eeee")];

  it("keeps the newest turns within the turn limit, oldest first", () => {
    expect(contextWindow(turns, { maxTurns: 3, maxChars: 1000 }).map((t) => t.content)).toEqual(["cccc", "dddd", "eeee"]);
  });

  it("stops at the character budget without splitting a turn", () => {
    expect(contextWindow(turns, { maxTurns: 40, maxChars: 11 }).map((t) => t.content)).toEqual(["dddd", "eeee"]);
    expect(contextWindow(turns, { maxTurns: 40, maxChars: 12 }).map((t) => t.content)).toEqual(["cccc", "dddd", "eeee"]);
  });

  it("is contiguous: a big turn ends the window even if older ones would fit", () => {
    const t = [turn("user", "a"), turn("assistant", "x".repeat(100)), turn("user", "b")];
    expect(contextWindow(t, { maxTurns: 40, maxChars: 10 }).map((x) => x.content)).toEqual(["b"]);
  });

  it("always keeps the newest turn, even alone over budget", () => {
    const t = [turn("assistant", "old"), turn("user", "y".repeat(500))];
    expect(contextWindow(t, { maxTurns: 40, maxChars: 10 })).toEqual([turn("user", "y".repeat(500))]);
    expect(contextWindow([], { maxTurns: 1, maxChars: 1 })).toEqual([]);
  });
});

describe("prefixed", () => {
  it("prefixes the name, else the username, else nothing", () => {
    expect(prefixed("hi", { name: "John", username: "johndoe" })).toBe("[John]: hi");
    expect(prefixed("hi", { username: "johndoe" })).toBe("[johndoe]: hi");
    expect(prefixed("hi", { name: "  " })).toBe("hi");
    expect(prefixed("hi")).toBe("hi");
  });
});
