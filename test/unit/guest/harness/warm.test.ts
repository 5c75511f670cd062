import { expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { warmClonePaths } from "../../../../guest/harness/warm.ts";

it("never fails a template build: an image without `true` is logged and warming goes on", async () => {
  const root = mkdtempSync(join(tmpdir(), "warm-root-")); // an empty "image": no `true` on any PATH
  const logs: string[] = [];
  const owned = new Set<number>();
  try {
    await warmClonePaths(root, { own: (p) => owned.add(p), disown: (p) => owned.delete(p) }, (m) => logs.push(m));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  expect(logs.find((l) => l.includes(`\`true\` in ${root} failed`))).toContain("executable file not found");
  expect(logs.at(-1)).toMatch(/^warmed the clone paths in \d+ ms$/);
  expect(owned.size).toBe(0); // every process it started was handed back
});
