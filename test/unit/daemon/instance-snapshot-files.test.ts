import { afterAll, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existingSnapshot, RETIRE_DELAY_MS, rawSnapshotPath, removeInstanceSnapshots, retireInstanceSnapshots, snapshotPath } from "../../../src/daemon/instances/boot.ts";
import { splitMemoryFile } from "../../../src/vmm/snapshot-file.ts";
import { restoreUri } from "../../../src/vmm/qemu.ts";

const dir = mkdtempSync(join(tmpdir(), "isnap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("writes snapshot.dev (its RAM in snapshot.ram), and still finds the snapshot.raw or snapshot.zst an older aegisd left, decompressed at restore", () => {
  mkdirSync(join(dir, "a"));
  expect(snapshotPath(dir, "a")).toBe(join(dir, "a", "snapshot.dev"));
  expect(rawSnapshotPath(dir, "a")).toBe(join(dir, "a", "snapshot.raw"));
  expect(existingSnapshot(dir, "a")).toBeUndefined();
  const legacy = join(dir, "a", "snapshot.zst");
  writeFileSync(legacy, "z");
  expect(existingSnapshot(dir, "a")).toBe(legacy);
  expect(restoreUri(legacy)).toStartWith("exec:zstd -dc ");
  writeFileSync(rawSnapshotPath(dir, "a"), "r");
  expect(existingSnapshot(dir, "a")).toBe(rawSnapshotPath(dir, "a"));
  expect(restoreUri(rawSnapshotPath(dir, "a"))).toBe("fd:3"); // opened by aegisd, read by QEMU as a file
  writeFileSync(snapshotPath(dir, "a"), "d");
  expect(existingSnapshot(dir, "a")).toBe(snapshotPath(dir, "a")); // the current format wins
  expect(splitMemoryFile(snapshotPath(dir, "a"))).toBe(join(dir, "a", "snapshot.ram"));
  expect(splitMemoryFile(rawSnapshotPath(dir, "a"))).toBeUndefined();
});

it("AEGIS_SNAPSHOT_SPLIT=0 writes the whole stream to snapshot.raw", () => {
  process.env.AEGIS_SNAPSHOT_SPLIT = "0";
  try {
    expect(snapshotPath(dir, "a")).toBe(join(dir, "a", "snapshot.raw"));
  } finally {
    delete process.env.AEGIS_SNAPSHOT_SPLIT;
  }
});

it("removes every format with its metadata, partial and consumed files, a split snapshot's RAM file too", () => {
  const files = ["snapshot.dev", "snapshot.dev.json", "snapshot.dev.partial", "snapshot.dev.consumed", "snapshot.ram", "snapshot.ram.partial", "snapshot.ram.consumed"];
  for (const f of [...files, "snapshot.raw", "snapshot.raw.json", "snapshot.raw.partial", "snapshot.zst", "snapshot.zst.json", "keep"]) writeFileSync(join(dir, "a", f), "x");
  removeInstanceSnapshots(dir, "a");
  expect(readdirSync(join(dir, "a"))).toEqual(["keep"]);
  expect(existsSync(join(dir, "a", "keep"))).toBe(true);
});

it("retires a consumed snapshot at once (metadata gone, data renamed) and deletes its data later", async () => {
  mkdirSync(join(dir, "b"));
  for (const f of ["snapshot.dev", "snapshot.dev.json", "snapshot.ram"]) writeFileSync(join(dir, "b", f), "x");
  const errors: unknown[] = [];
  retireInstanceSnapshots(dir, "b", (e) => errors.push(e));
  expect(existingSnapshot(dir, "b")).toBeUndefined();
  expect(readdirSync(join(dir, "b")).sort()).toEqual(["snapshot.dev.consumed", "snapshot.ram.consumed"]);
  await Bun.sleep(RETIRE_DELAY_MS + 300);
  expect(readdirSync(join(dir, "b"))).toEqual([]);
  expect(errors).toEqual([]);
}, RETIRE_DELAY_MS + 5000);
