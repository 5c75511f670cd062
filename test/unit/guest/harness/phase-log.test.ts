import { describe, expect, it } from "bun:test";
import { parsePhaseLine, PhaseLog } from "../../../../guest/harness/phase-log.ts";

describe("guest phase lines", () => {
  it("prints each step's own duration and the total, and parses them back", () => {
    const p = new PhaseLog();
    p.mark("mount /mnt/lower");
    p.mark("clock + entropy");
    const line = p.line("setup");
    expect(line).toMatch(/^setup phases: mount \/mnt\/lower \d+\.\d, clock \+ entropy \d+\.\d, total \d+\.\d ms$/);
    const parsed = parsePhaseLine(`noise\naegis-harness: ${line}\nmore`, "setup")!;
    expect(Object.keys(parsed)).toEqual(["mount /mnt/lower", "clock + entropy", "total"]);
    expect(parsed.total).toBeGreaterThanOrEqual(parsed["mount /mnt/lower"]!);
  });

  it("takes the last line of a kind and tells kinds apart", () => {
    const text = "aegis-harness: rpc run phases: parse 1.0, total 2.0 ms\naegis-harness: rpc setup phases: parse 3.0, total 4.0 ms\naegis-harness: rpc run phases: parse 5.0, total 6.0 ms\n";
    expect(parsePhaseLine(text, "rpc run")).toEqual({ parse: 5, total: 6 });
    expect(parsePhaseLine(text, "rpc setup")).toEqual({ parse: 3, total: 4 });
    expect(parsePhaseLine(text, "first process")).toBeUndefined();
  });
});
