import { afterEach, describe, expect, it } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type UnpackLimits, unpackLayers } from "../../../src/daemon/images/unpack.ts";
import { makeLayer, type TestEntry } from "../../helpers/oci-build.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Unpack layers (each a list of entries) into a fresh temp tree. */
async function unpack(layers: (TestEntry[] | Uint8Array)[], compression: "gzip" | "zstd" | "none" = "gzip", limits?: Partial<UnpackLimits>) {
  const dir = mkdtempSync(join(tmpdir(), "aegis-unpack-"));
  dirs.push(dir);
  const inputs = layers.map((l, i) => {
    const path = join(dir, `layer${i}`);
    writeFileSync(path, l instanceof Uint8Array ? l : makeLayer(l, compression).bytes);
    return { path, digest: `layer${i}` };
  });
  const root = join(dir, "root");
  return { root, dir, result: unpackLayers(root, inputs, { limits }) };
}

describe("unpack: layers in order", () => {
  for (const c of ["gzip", "zstd", "none"] as const) {
    it(`applies ${c} layers with modes, owners, symlinks and hard links`, async () => {
      const { root, result } = await unpack(
        [
          [
            { path: "etc/", type: "Directory" },
            { path: "etc/shadow", content: "s", mode: 0o640, uid: 0, gid: 42 },
            { path: "bin/su", content: "x", mode: 0o4755 },
            { path: "bin/link", type: "Link", linkpath: "bin/su" },
            { path: "bin/sym", type: "SymbolicLink", linkpath: "/bin/su" },
            { path: "home/u/f", content: "hi", uid: 1000, gid: 1000 },
          ],
        ],
        c,
      );
      const tree = await result;
      expect(readFileSync(join(root, "etc/shadow"), "utf8")).toBe("s");
      expect(lstatSync(join(root, "bin/su")).ino).toBe(lstatSync(join(root, "bin/link")).ino);
      expect(readlinkSync(join(root, "bin/sym"))).toBe("/bin/su");
      expect(tree.meta.get("bin/su")).toEqual({ kind: "file", mode: 0o4755, uid: 0, gid: 0 });
      expect(tree.meta.get("etc/shadow")).toMatchObject({ mode: 0o640, gid: 42 });
      expect(tree.meta.get("home/u/f")).toMatchObject({ uid: 1000, gid: 1000 });
      expect(tree.meta.get("home")).toMatchObject({ kind: "dir", mode: 0o755 });
      expect(tree.meta.get("bin/link")).toMatchObject({ mode: 0o4755 });
    });
  }

  it("removes a file deleted by a whiteout in a later layer", async () => {
    const { root, result } = await unpack([
      [
        { path: "a/keep", content: "1" },
        { path: "a/gone", content: "2" },
        { path: "a/dir/x", content: "3" },
      ],
      [
        { path: "a/.wh.gone", content: "" },
        { path: "a/.wh.dir", content: "" },
      ],
    ]);
    const tree = await result;
    expect(readdirSync(join(root, "a"))).toEqual(["keep"]);
    expect(tree.meta.has("a/gone")).toBe(false);
    expect(tree.meta.has("a/dir/x")).toBe(false);
  });

  it("hides lower content of an opaque directory but keeps what the same layer adds", async () => {
    const { root, result } = await unpack([
      [
        { path: "d/old", content: "1" },
        { path: "d/sub/old", content: "1" },
        { path: "d/kept/old", content: "1" },
        { path: "other", content: "1" },
      ],
      [
        { path: "d/kept/", type: "Directory" },
        { path: "d/new", content: "2" },
        { path: "d/sub/new", content: "2" },
        { path: "d/.wh..wh..opq", content: "" },
      ],
    ]);
    await result;
    expect(readdirSync(join(root, "d")).sort()).toEqual(["kept", "new", "sub"]);
    expect(readdirSync(join(root, "d/kept"))).toEqual([]);
    expect(readdirSync(join(root, "d/sub"))).toEqual(["new"]);
    expect(existsSync(join(root, "other"))).toBe(true);
  });

  it("follows a symlinked directory that stays inside the root (usrmerge lib -> usr/lib)", async () => {
    const { root, result } = await unpack([[{ path: "usr/lib/", type: "Directory" }, { path: "lib", type: "SymbolicLink", linkpath: "usr/lib" }], [{ path: "lib/libc.so", content: "c" }]]);
    const tree = await result;
    expect(readFileSync(join(root, "usr/lib/libc.so"), "utf8")).toBe("c");
    expect(tree.meta.has("usr/lib/libc.so")).toBe(true);
  });

  it("replaces a symlink with a file instead of writing through it", async () => {
    const { root, dir, result } = await unpack([[{ path: "f", type: "SymbolicLink", linkpath: "/etc/passwd" }], [{ path: "f", content: "mine" }]]);
    await result;
    expect(lstatSync(join(root, "f")).isFile()).toBe(true);
    expect(readFileSync(join(root, "f"), "utf8")).toBe("mine");
    expect(existsSync(join(dir, "etc"))).toBe(false);
  });

  it("records device nodes and FIFOs instead of creating them", async () => {
    const { root, result } = await unpack([[{ path: "dev/null", type: "CharacterDevice", devmaj: 1, devmin: 3, mode: 0o666 }, { path: "dev/sda", type: "BlockDevice", devmaj: 8, devmin: 0 }, { path: "run/p", type: "FIFO" }]]);
    const tree = await result;
    expect(tree.specials.sort()).toEqual(["dev/null", "dev/sda", "run/p"]);
    expect(tree.meta.get("dev/null")).toMatchObject({ kind: "char", devmajor: 1, devminor: 3, mode: 0o666 });
    expect(lstatSync(join(root, "dev/null")).isFile()).toBe(true);
  });
});

describe("unpack: refusals", () => {
  const refused = async (layers: (TestEntry[] | Uint8Array)[], reason: string, limits?: Partial<UnpackLimits>) => {
    const { dir, result } = await unpack(layers, "gzip", limits);
    const err = await result.then(
      () => null,
      (e: Error & { data?: { reason: string } }) => e,
    );
    expect(err).not.toBeNull();
    expect(err?.data?.reason).toBe(reason);
    return { err: err!, dir };
  };

  it("refuses an absolute path", async () => {
    const { err } = await refused([[{ path: "/etc/passwd", content: "x" }]], "absolute-path");
    expect(err.message).toContain('entry "/etc/passwd" has an absolute path');
  });
  it("refuses a '..' component", async () => {
    const { err, dir } = await refused([[{ path: "a/../../escape", content: "x" }]], "dot-dot");
    expect(err.message).toContain("'..'");
    expect(existsSync(join(dir, "escape"))).toBe(false);
  });
  it("refuses writing through a symlink that points outside the root", async () => {
    const { dir } = await refused([[{ path: "evil", type: "SymbolicLink", linkpath: "../../.." }, { path: "evil/pwned", content: "x" }]], "symlink-escape");
    expect(existsSync(join(dir, "pwned"))).toBe(false);
  });
  it("refuses a relative symlink chain that climbs out of the root", async () => {
    await refused([[{ path: "a/b/", type: "Directory" }, { path: "a/b/up", type: "SymbolicLink", linkpath: "../../../x" }, { path: "a/b/up/f", content: "x" }]], "symlink-escape");
  });
  it("treats absolute symlink targets as relative to the root (no host access)", async () => {
    const { root, result } = await unpack([[{ path: "etc", type: "SymbolicLink", linkpath: "/tmp" }, { path: "etc/written", content: "x" }]]);
    await result;
    expect(readFileSync(join(root, "tmp/written"), "utf8")).toBe("x");
  });
  it("refuses a hard link whose target has '..'", async () => {
    await refused([[{ path: "h", type: "Link", linkpath: "../../etc/passwd" }]], "dot-dot");
  });
  it("refuses a hard link through a symlink out of the root", async () => {
    await refused([[{ path: "s", type: "SymbolicLink", linkpath: "/../../etc" }, { path: "h", type: "Link", linkpath: "s/passwd" }]], "symlink-escape");
  });
  it("refuses an absolute hard link target", async () => {
    await refused([[{ path: "h", type: "Link", linkpath: "/etc/passwd" }]], "absolute-path");
  });
  it("fails cleanly on too many entries (tar bomb)", async () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ path: `f${i}`, content: "" }));
    const { err } = await refused([many], "too-many-entries", { maxEntries: 20 });
    expect(err.message).toContain("more than 20 entries");
  });
  it("fails cleanly on content beyond the size limit, before writing it", async () => {
    const { err } = await refused([[{ path: "big", declaredSize: 10 * 1024 ** 3 }]], "too-large", { maxBytes: 1024 ** 3 });
    expect(err.message).toContain('layer layer0 takes the image\'s unpacked content past the 1 GiB limit at "big" (10 GiB)');
  });
  for (const name of [".wh...", "sub/.wh...", ".wh..", ".wh."]) {
    it(`refuses the whiteout "${name}" (it names no entry of its directory) and deletes nothing`, async () => {
      const { dir, err } = await refused([[{ path: "sub/keep", content: "k" }], [{ path: name, content: "" }]], "bad-entry");
      expect(err.message).toContain(`whiteout "${name}"`);
      expect(readFileSync(join(dir, "root", "sub", "keep"), "utf8")).toBe("k");
      expect(existsSync(join(dir, "layer0"))).toBe(true);
    });
  }
  it("stops a zstd bomb at the default expansion limit, naming the layer, before writing the content", async () => {
    // ~100 bytes of zstd that declare 2 GiB: under the 16 GiB unpacked limit, far over 100x its size.
    const { err, dir } = await refused([[{ path: "a", content: "x" }], [{ path: "zeros", declaredSize: 2 * 1024 ** 3 }]], "too-large");
    expect(err.message).toContain('layer layer1 expands the image to 2 GiB at "zeros", more than 100 times');
    expect(existsSync(join(dir, "root", "zeros"))).toBe(false);
  });
  it("stops real content compressed ~150x at the expansion limit and accepts it when the check is off", async () => {
    // 4 KiB blocks of mostly zeros with a few random bytes each: ~150x under zstd, under tar's own 1000x guard.
    const sparse = new Uint8Array(32 * 1024 * 1024);
    for (let i = 0; i < sparse.length; i += 4096) sparse.set(crypto.getRandomValues(new Uint8Array(24)), i);
    const layer = makeLayer([{ path: "z1", content: sparse }, { path: "z2", content: sparse }], "zstd").bytes;
    const ratio = (64 * 1024 * 1024) / layer.byteLength;
    expect(ratio).toBeGreaterThan(100);
    expect(ratio).toBeLessThan(1000);
    const { err, dir } = await refused([layer], "too-large", { expansionFloorBytes: 16 * 1024 * 1024 });
    // 32 MiB fits within 100x the ~450 KiB layer; the second file would not, and is never written.
    expect(err.message).toContain('layer layer0 expands the image to 64 MiB at "z2", more than 100 times');
    expect(existsSync(join(dir, "root", "z2"))).toBe(false);
    const ok = await unpack([layer], "zstd", { expansionFloorBytes: 16 * 1024 * 1024, maxExpansion: 0 });
    expect((await ok.result).bytes).toBe(64 * 1024 * 1024);
  });
  it("refuses a layer tar itself sees expanding past 1000x, and accepts it with the expansion check off", async () => {
    const layer = makeLayer([{ path: "zeros", content: new Uint8Array(64 * 1024 * 1024) }], "zstd").bytes;
    const { err } = await refused([layer], "too-large", { expansionFloorBytes: 1024 ** 3 });
    expect(err.message).toContain("layer layer0 decompresses to more than 1000 times its size");
    const ok = await unpack([layer], "zstd", { maxExpansion: 0 });
    expect((await ok.result).bytes).toBe(64 * 1024 * 1024);
  });
  it("refuses a layer that is not a tar", async () => {
    await refused([Bun.gzipSync(new TextEncoder().encode("this is not a tar archive at all".repeat(40)))], "bad-archive");
  });
});

describe("unpack: compression detection", () => {
  it("refuses a layer labelled gzip whose bytes are a plain tar, naming the label", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aegis-unpack-"));
    dirs.push(dir);
    const path = join(dir, "layer");
    writeFileSync(path, makeLayer([{ path: "f", content: "x" }], "none").bytes);
    const err = await unpackLayers(join(dir, "root"), [{ path, digest: "L", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" }]).catch((e: Error) => e);
    expect(String(err)).toContain("labelled application/vnd.oci.image.layer.v1.tar+gzip but its bytes are not gzip-compressed");
  });
  it("accepts a compressed layer labelled as a plain tar (magic bytes win)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aegis-unpack-"));
    dirs.push(dir);
    const path = join(dir, "layer");
    writeFileSync(path, makeLayer([{ path: "f", content: "x" }], "zstd").bytes);
    await unpackLayers(join(dir, "root"), [{ path, digest: "L", mediaType: "application/vnd.oci.image.layer.v1.tar" }]);
    expect(readFileSync(join(dir, "root", "f"), "utf8")).toBe("x");
  });
});
