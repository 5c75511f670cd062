import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureOverlayDisk, mkfsOverlayArgv } from "../../../src/vmm/overlay-disk.ts";

const dir = mkdtempSync(join(tmpdir(), "agovl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("overlay disk", () => {
  it("formats a labelled ext4 with a journal, lazy init and no reserved blocks", () => {
    const a = mkfsOverlayArgv("/i/o.ext4", 2048);
    expect(a.slice(0, 3)).toEqual(["mkfs.ext4", "-q", "-F"]);
    expect(a).toContain("aegis-overlay");
    expect(a.join(" ")).toContain("-m 0 -J size=16 -E lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0");
    expect(a.slice(-2)).toEqual(["/i/o.ext4", "2048M"]);
    expect(() => mkfsOverlayArgv("/x", 10)).toThrow(/at least 64/);
  });

  it("creates a sparse disk once and never replaces an existing one", async () => {
    const p = join(dir, "sub", "overlay.ext4");
    expect(await ensureOverlayDisk(p, 512)).toBe(true);
    const st = statSync(p);
    expect(st.size).toBe(512 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(8 * 1024 * 1024); // sparse
    const label = Bun.spawnSync(["dumpe2fs", "-h", p], { stderr: "ignore" }).stdout.toString();
    expect(label).toMatch(/Filesystem volume name:\s+aegis-overlay/);
    expect(await ensureOverlayDisk(p, 512)).toBe(false);
    writeFileSync(join(dir, "keep.ext4"), "user data");
    expect(await ensureOverlayDisk(join(dir, "keep.ext4"))).toBe(false);
    expect(readdirSync(join(dir, "sub"))).toEqual(["overlay.ext4"]); // no temp files left
  });
});
