import { describe, expect, it } from "bun:test";
import { DropLog } from "../../../src/gateway/drop-log.ts";

describe("DropLog", () => {
  it("logs the first refusal at once, then one summary per interval with a few quoted examples", () => {
    const lines: string[] = [];
    let now = 0;
    const d = new DropLog({ info: () => {}, error: () => {}, warn: (m) => lines.push(m) }, 60_000, () => now);
    d.note("1", "not allowed");
    for (let i = 0; i < 1000; i++) d.note(`${i}evil\n${"x".repeat(100)}`, "not allowed");
    expect(lines).toEqual(['dropped 1 agent frame for chat "1": not allowed']);
    now = 60_000;
    d.note("2", "not allowed");
    expect(lines).toHaveLength(2);
    expect(lines[1]!.startsWith("dropped 1001 agent frames for chats ")).toBe(true);
    expect(lines[1]!.split("evil").length - 1).toBe(5);
    expect(lines[1]).not.toContain("\n");
  });
});
