import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastLines, readTail, rotateIfLarge, rotatedPath } from "../../../src/control/file-ring.ts";
import { fileLogger } from "../../../src/daemon/log.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-ring-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("file ring", () => {
  it("names the previous generation", () => {
    expect(rotatedPath("/x/aegisd.log")).toBe("/x/aegisd.1.log");
    expect(rotatedPath("/x/console")).toBe("/x/console.1");
  });

  it("rotates by copy and truncate, so a writer holding the file with O_APPEND continues in the new generation", () => {
    const path = join(dir, "console.log");
    const fd = openSync(path, "a");
    writeSync(fd, "old\n".repeat(100));
    expect(rotateIfLarge(path, 1000)).toBe(false);
    writeSync(fd, "old\n".repeat(200));
    expect(rotateIfLarge(path, 1000)).toBe(true);
    writeSync(fd, "new\n");
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(statSync(rotatedPath(path)).size).toBe(1200);
  });

  it("reads the tail of a large file without reading all of it", () => {
    const path = join(dir, "big.log");
    writeFileSync(path, `${"x".repeat(5000)}\n${Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n")}\n`);
    const tail = readTail(path, 300);
    expect(tail.length).toBeLessThanOrEqual(300);
    expect(tail.startsWith("line ")).toBe(true); // the partial first line is dropped
    expect(lastLines(path, 2, 300)).toEqual(["line 98", "line 99"]);
    expect(readTail(join(dir, "missing"))).toBe("");
  });

  it("keeps aegisd.log within two generations of its limit, stderr lines included", () => {
    const path = join(dir, "aegisd.log");
    const stderr = openSync(path, "a"); // what daemon-process.ts gives aegisd as stderr
    const log = fileLogger(path, false, 10_000);
    for (let i = 0; i < 5000; i++) {
      log.info("mcp request", { instance: "inst-x", tool: "self_info", i });
      if (i % 10 === 0) writeSync(stderr, "stderr line\n");
    }
    closeSync(stderr);
    expect(existsSync(rotatedPath(path))).toBe(true);
    // The size is checked every 64 lines: at most that many lines past the limit.
    expect(statSync(path).size).toBeLessThan(10_000 + 64 * 120);
    expect(statSync(rotatedPath(path)).size).toBeLessThan(10_000 + 64 * 120);
    const last = readFileSync(path, "utf8").trimEnd().split("\n").at(-1)!;
    expect(JSON.parse(last).i).toBe(4999);
  });
});
