/**
 * Path safety of layer entries, as a hostile image would probe it: absolute
 * names, `..`, symlinks (relative, absolute, nested, chained, looping) that
 * try to lead a write outside the image root. Absolute symlink targets are
 * resolved as a chroot would, from the image root, wherever the link sits.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UnpackRefused } from "../../../src/daemon/images/errors.ts";
import { entryParts, resolveDir } from "../../../src/daemon/images/unpack-paths.ts";

let root: string;
let outside: string;
beforeEach(() => {
  const base = mkdtempSync(join(tmpdir(), "aegis-unpack-paths-"));
  root = join(base, "root");
  outside = join(base, "outside");
  mkdirSync(root);
  mkdirSync(outside);
});
afterEach(() => rmSync(join(root, ".."), { recursive: true, force: true }));

function refusal(fn: () => unknown): UnpackRefused {
  try {
    fn();
  } catch (err) {
    if (err instanceof UnpackRefused) return err;
    throw err;
  }
  throw new Error("expected the entry to be refused");
}

const implicit: string[] = [];
const resolve = (parts: string[], name = parts.join("/")) => resolveDir(root, parts, name, "sha256:abc", (k) => implicit.push(k));
beforeEach(() => {
  implicit.length = 0;
});

describe("entryParts", () => {
  it("splits a relative name, dropping empty and '.' components", () => {
    expect(entryParts("usr/bin/env", "L")).toEqual(["usr", "bin", "env"]);
    expect(entryParts("./usr//bin/./", "L")).toEqual(["usr", "bin"]);
    expect(entryParts("./", "L")).toEqual([]);
    expect(entryParts("", "L")).toEqual([]);
    expect(entryParts("a..b/..c/d..", "L")).toEqual(["a..b", "..c", "d.."]);
  });
  it("refuses an absolute name, naming the layer, the role and the name", () => {
    const e = refusal(() => entryParts("/etc/passwd", "sha256:abc"));
    expect(e.reason).toBe("absolute-path");
    expect(e.message).toBe('layer sha256:abc: entry "/etc/passwd" has an absolute path');
    expect(e.hint).toContain("relative to the image root");
    expect(refusal(() => entryParts("/x", "L", "hard link target of \"y\"")).message).toBe('layer L: hard link target of "y" "/x" has an absolute path');
  });
  it("refuses a '..' component anywhere", () => {
    for (const name of ["..", "../x", "a/../../x", "a/b/..", "./.."]) {
      const e = refusal(() => entryParts(name, "L"));
      expect(e.reason).toBe("dot-dot");
      expect(e.message).toBe(`layer L: entry "${name}" contains a '..' component`);
    }
  });
  it("refuses a NUL byte", () => {
    const e = refusal(() => entryParts("a/b\0c", "L"));
    expect(e.reason).toBe("bad-entry");
    expect(e.message).toContain("NUL byte");
  });
});

describe("resolveDir", () => {
  it("creates missing directories (0755) and reports each one as implicit", () => {
    expect(resolve(["a", "b", "c"])).toEqual(["a", "b", "c"]);
    expect(statSync(join(root, "a/b/c")).isDirectory()).toBe(true);
    expect(statSync(join(root, "a/b")).mode & 0o777).toBe(0o755);
    expect(implicit).toEqual(["a", "a/b", "a/b/c"]);
  });
  it("walks existing directories without reporting them", () => {
    mkdirSync(join(root, "a/b"), { recursive: true });
    expect(resolve(["a", "b", "c"])).toEqual(["a", "b", "c"]);
    expect(implicit).toEqual(["a/b/c"]);
  });
  it("returns the root for no components", () => {
    expect(resolve([])).toEqual([]);
    expect(resolve(["", "."])).toEqual([]);
  });
  it("follows a relative symlink that stays inside (usrmerge lib -> usr/lib)", () => {
    mkdirSync(join(root, "usr/lib"), { recursive: true });
    symlinkSync("usr/lib", join(root, "lib"));
    expect(resolve(["lib", "x"])).toEqual(["usr", "lib", "x"]);
    expect(existsSync(join(root, "usr/lib/x"))).toBe(true);
  });
  it("follows '..' and '.' inside a symlink target from the link's directory", () => {
    mkdirSync(join(root, "a/b"), { recursive: true });
    symlinkSync(".././/c/.", join(root, "a/b/l"));
    expect(resolve(["a", "b", "l"])).toEqual(["a", "c"]);
    symlinkSync("..", join(root, "a/up"));
    expect(resolve(["a", "up"])).toEqual([]);
  });
  it("re-roots an absolute symlink target at the image root, also from a nested directory", () => {
    mkdirSync(join(root, "usr/share"), { recursive: true });
    symlinkSync("/etc/ssl", join(root, "usr/share/certs"));
    expect(resolve(["usr", "share", "certs", "x"])).toEqual(["etc", "ssl", "x"]);
    expect(existsSync(join(root, "etc/ssl/x"))).toBe(true);
    expect(existsSync(join(root, "usr/share/etc"))).toBe(false);
    symlinkSync("/", join(root, "usr/top"));
    expect(resolve(["usr", "top", "y"])).toEqual(["y"]);
  });
  it("never lets an absolute target reach the host path it names", () => {
    mkdirSync(join(root, "a"));
    symlinkSync(outside, join(root, "a/host"));
    const inside = outside.split("/").filter(Boolean);
    expect(resolve(["a", "host"])).toEqual(inside);
    expect(existsSync(join(root, ...inside))).toBe(true);
  });
  it("refuses a relative symlink that climbs out of the root, from the top or nested", () => {
    symlinkSync("..", join(root, "up"));
    const e = refusal(() => resolve(["up", "x"], "up/x/file"));
    expect(e.reason).toBe("symlink-escape");
    expect(e.message).toBe('layer sha256:abc: entry "up/x/file" resolves through a symlink to a path outside the image root');
    expect(e.hint).toContain("may not be used to write outside");
    mkdirSync(join(root, "a/b"), { recursive: true });
    symlinkSync("../../../outside", join(root, "a/b/out"));
    expect(refusal(() => resolve(["a", "b", "out"])).reason).toBe("symlink-escape");
    expect(existsSync(join(outside, "x"))).toBe(false);
  });
  it("refuses a chain through an absolute target that then climbs out", () => {
    mkdirSync(join(root, "deep/er"), { recursive: true });
    symlinkSync("/..", join(root, "deep/er/l"));
    expect(refusal(() => resolve(["deep", "er", "l"])).reason).toBe("symlink-escape");
  });
  it("follows a chain of 40 symlinks and refuses a 41st (and a loop) as an escape", () => {
    mkdirSync(join(root, "end"));
    for (let i = 0; i < 40; i++) symlinkSync(i === 39 ? "end" : `l${i + 1}`, join(root, `l${i}`));
    expect(resolve(["l0"])).toEqual(["end"]);
    symlinkSync("l0", join(root, "m"));
    const e = refusal(() => resolve(["m"]));
    expect(e.reason).toBe("symlink-escape");
    expect(e.message).toBe('layer sha256:abc: entry "m" goes through more than 40 symlinks');
    symlinkSync("loop-b", join(root, "loop-a"));
    symlinkSync("loop-a", join(root, "loop-b"));
    expect(refusal(() => resolve(["loop-a", "x"])).reason).toBe("symlink-escape");
  });
  it("counts hops over the whole walk, not per link", () => {
    mkdirSync(join(root, "d"));
    for (let i = 0; i < 21; i++) symlinkSync(i === 20 ? "d" : `a${i + 1}`, join(root, `a${i}`));
    mkdirSync(join(root, "d/e"));
    for (let i = 0; i < 21; i++) symlinkSync(i === 20 ? "e" : `b${i + 1}`, join(root, `d/b${i}`));
    expect(refusal(() => resolve(["a0", "b0"])).message).toContain("more than 40 symlinks");
  });
  it("refuses a file where a directory is needed, naming the path", () => {
    mkdirSync(join(root, "a"));
    writeFileSync(join(root, "a/f"), "x");
    const e = refusal(() => resolve(["a", "f", "x"], "a/f/x/y"));
    expect(e.reason).toBe("bad-entry");
    expect(e.message).toBe('layer sha256:abc: entry "a/f/x/y" needs "a/f" to be a directory, but it is a file');
  });
  it("propagates a filesystem error other than a missing path", () => {
    expect(() => resolve(["n".repeat(300)])).toThrow(/ENAMETOOLONG/);
  });
});
