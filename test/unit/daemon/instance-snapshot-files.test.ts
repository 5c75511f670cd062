import { afterAll, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existingSnapshot, removeInstanceSnapshots, snapshotPath } from "../../../src/daemon/instances/boot.ts";
import { restoreUri } from "../../../src/vmm/qemu.ts";

const dir = mkdtempSync(join(tmpdir(), "isnap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("writes snapshot.raw, and still finds the snapshot.zst an older aegisd left, decompressed at restore", () => {
  mkdirSync(join(dir, "a"));
  expect(snapshotPath(dir, "a")).toBe(join(dir, "a", "snapshot.raw"));
  expect(existingSnapshot(dir, "a")).toBeUndefined();
  const legacy = join(dir, "a", "snapshot.zst");
  writeFileSync(legacy, "z");
  expect(existingSnapshot(dir, "a")).toBe(legacy);
  expect(restoreUri(legacy)).toStartWith("exec:zstd -dc ");
  writeFileSync(snapshotPath(dir, "a"), "r");
  expect(existingSnapshot(dir, "a")).toBe(snapshotPath(dir, "a")); // the current format wins
  expect(restoreUri(snapshotPath(dir, "a"))).toStartWith("exec:cat ");
});

it("removes both formats with their metadata and partial files", () => {
  for (const f of ["snapshot.raw", "snapshot.raw.json", "snapshot.raw.partial", "snapshot.zst", "snapshot.zst.json", "keep"]) writeFileSync(join(dir, "a", f), "x");
  removeInstanceSnapshots(dir, "a");
  expect(readdirSync(join(dir, "a"))).toEqual(["keep"]);
  expect(existsSync(join(dir, "a", "keep"))).toBe(true);
});
