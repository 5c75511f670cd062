import { describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCpio } from "../../../../src/vmm/assets/cpio.ts";

describe("writeCpio", () => {
  it("writes 110-byte newc headers with 4-byte alignment and a trailer", () => {
    const out = writeCpio([{ type: "file", path: "a", data: new Uint8Array([1, 2, 3]) }]);
    const text = Buffer.from(out).toString("latin1");
    expect(text.startsWith("070701")).toBe(true);
    // header(110) + "a\0"(2) = 112 (aligned), data 3 + pad 1 = 116, then the trailer header
    expect(text.slice(116, 122)).toBe("070701");
    expect(text).toContain("TRAILER!!!");
    expect(out.length % 4).toBe(0);
  });

  it("is reproducible for the same entries", () => {
    const entries = [{ type: "dir" as const, path: "d" }, { type: "symlink" as const, path: "d/l", target: "/x" }];
    expect(Buffer.from(writeCpio(entries)).equals(Buffer.from(writeCpio(entries)))).toBe(true);
  });

  it("produces an archive GNU cpio extracts with modes, symlinks and contents intact", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cpio-"));
    try {
      const archive = writeCpio([
        { type: "dir", path: "bin" },
        { type: "file", path: "bin/tool", data: new TextEncoder().encode("#!/bin/sh\necho hi\n"), mode: 0o755 },
        { type: "symlink", path: "bin/alias", target: "tool" },
        { type: "file", path: "odd-name-xx", data: new Uint8Array(5).fill(7) },
      ]);
      writeFileSync(join(dir, "a.cpio"), archive);
      const proc = Bun.spawn(["cpio", "-idm", "--quiet", "-F", "a.cpio"], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(readFileSync(join(dir, "bin/tool"), "utf8")).toBe("#!/bin/sh\necho hi\n");
      expect(statSync(join(dir, "bin/tool")).mode & 0o777).toBe(0o755);
      expect(readlinkSync(join(dir, "bin/alias"))).toBe("tool");
      expect([...readFileSync(join(dir, "odd-name-xx"))]).toEqual([7, 7, 7, 7, 7]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
