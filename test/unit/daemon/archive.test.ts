import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { entryTarget, tarEntries } from "../../../src/daemon/instances/archive.ts";

const dir = mkdtempSync(join(tmpdir(), "aegis-archive-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tarEntries", () => {
  it("reads what GNU tar writes, long names (PAX and GNU) included, with modes, mtimes and link targets", async () => {
    const src = join(dir, "src");
    const long = "d".repeat(120);
    mkdirSync(join(src, long), { recursive: true });
    writeFileSync(join(src, long, "f.txt"), "hello");
    symlinkSync("f.txt", join(src, long, "l"));
    utimesSync(join(src, long, "f.txt"), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    for (const format of ["posix", "gnu"]) {
      const file = join(dir, `${format}.tar`);
      const p = Bun.spawnSync(["tar", `--format=${format}`, "-C", src, "-cf", file, long]);
      expect(p.exitCode).toBe(0);
      const entries = [...tarEntries(file)].map((e) => ({ path: e.path, type: e.type, size: e.size, linkpath: e.linkpath }));
      expect(entries).toContainEqual({ path: `${long}/f.txt`, type: "File", size: 5, linkpath: undefined });
      expect(entries).toContainEqual(expect.objectContaining({ path: `${long}/l`, type: "SymbolicLink", linkpath: "f.txt" }));
      const f = [...tarEntries(file)].find((e) => e.path.endsWith("f.txt"))!;
      expect(f.mtime?.getTime()).toBe(1_600_000_000_000);
    }
  });
  it("refuses a corrupt header instead of guessing", () => {
    const file = join(dir, "bad.tar");
    writeFileSync(file, Buffer.concat([Buffer.from("not a tar header".padEnd(512, "x")), Buffer.alloc(1024)]));
    expect(() => [...tarEntries(file)]).toThrow("bad header");
  });
});

describe("entryTarget", () => {
  it("places relative names under the destination and skips the archive root", () => {
    expect(entryTarget("/dst", "a/b.txt")).toBe("/dst/a/b.txt");
    expect(entryTarget("/dst", "./a/")).toBe("/dst/a");
    expect(entryTarget("/dst", "./")).toBeNull();
  });
  it("refuses names that would land outside the destination", () => {
    for (const name of ["../x", "a/../../x", "/etc/passwd", ".."]) expect(() => entryTarget("/dst", name)).toThrow("would land outside /dst");
  });
});
