import { describe, expect, it } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "tar";
import { arMembers, unpackDeb } from "../../../../src/vmm/assets/deb.ts";
import { checkRelease } from "../../../../src/vmm/assets/debian-archive.ts";
import { compareDebVersions, findPackageStanzas, parseStanza, releaseSha256 } from "../../../../src/vmm/assets/debian-control.ts";
import { clearsignedBody, verifyInRelease } from "../../../../src/vmm/assets/debian-inrelease.ts";
import { firstDependency } from "../../../../src/vmm/assets/debian-package.ts";

/** An ar archive (GNU format, as dpkg-deb writes it). */
function ar(members: [string, Uint8Array][]): Uint8Array {
  const parts: Buffer[] = [Buffer.from("!<arch>\n")];
  for (const [name, data] of members) {
    const h = `${`${name}/`.padEnd(16)}${"0".padEnd(12)}${"0".padEnd(6)}${"0".padEnd(6)}${"100644".padEnd(8)}${String(data.length).padEnd(10)}\`\n`;
    parts.push(Buffer.from(h, "latin1"), Buffer.from(data));
    if (data.length % 2) parts.push(Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

async function tarOf(dir: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  const stream = create({ cwd: dir, portable: true }, ["."]);
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function xz(b: Uint8Array): Promise<Uint8Array> {
  const p = Bun.spawn(["xz", "-c"], { stdin: b, stdout: "pipe" });
  return new Response(p.stdout).bytes();
}

describe("unpacking .deb files", () => {
  it("lists ar members with their offsets and refuses truncated archives", () => {
    const a = ar([["debian-binary", Buffer.from("2.0\n")], ["data.tar", Buffer.from("abc")]]);
    expect(arMembers(a).map((m) => [m.name, m.size])).toEqual([["debian-binary", 4], ["data.tar", 3]]);
    expect(() => arMembers(a.subarray(0, a.length - 2), "x.deb")).toThrow(/x\.deb: member "data.tar" \(3 bytes\) runs past the end/);
    expect(() => arMembers(Buffer.from("PK\x03\x04"), "y.deb")).toThrow(/y\.deb is not an ar archive/);
  });

  for (const kind of ["xz", "zst", "gz"] as const) {
    it(`extracts data.tar.${kind} like dpkg-deb -x`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "deb-"));
      try {
        const src = join(dir, "src");
        await Bun.write(join(src, "bin", "tool"), "#!/bin/sh\necho hi\n");
        await Bun.write(join(src, "usr", "share", "doc", "x"), "doc");
        const tar = await tarOf(src);
        const data = kind === "xz" ? await xz(tar) : kind === "zst" ? Bun.zstdCompressSync(tar) : Bun.gzipSync(new Uint8Array(tar));
        const deb = join(dir, "p.deb");
        writeFileSync(deb, ar([["debian-binary", Buffer.from("2.0\n")], ["control.tar.xz", await xz(tar)], [`data.tar.${kind}`, data]]));
        expect(await unpackDeb(deb, join(dir, "out"))).toBe(`data.tar.${kind}`);
        expect(readFileSync(join(dir, "out", "bin", "tool"), "utf8")).toBe("#!/bin/sh\necho hi\n");
        expect(readdirSync(join(dir, "out", "usr", "share", "doc"))).toEqual(["x"]);
        const dpkg = Bun.spawnSync(["dpkg-deb", "-x", deb, join(dir, "dpkg")]);
        expect(dpkg.exitCode).toBe(0);
        expect(Bun.spawnSync(["diff", "-r", join(dir, "out"), join(dir, "dpkg")]).exitCode).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("refuses an ar archive that is not a Debian package", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deb-"));
    try {
      writeFileSync(join(dir, "x.deb"), ar([["hello.txt", Buffer.from("hi")]]));
      await expect(unpackDeb(join(dir, "x.deb"), join(dir, "out"))).rejects.toThrow(/not a Debian package \(first member is "hello.txt"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Debian metadata", () => {
  it("orders versions as dpkg does (epochs, revisions, tilde)", () => {
    const cases: [string, string, number][] = [
      ["6.1.192-3", "6.1.176-1", 1],
      ["1:1.35.0-4+deb12u1+b1", "1.36.0-1", 1],
      ["1.0~rc1-1", "1.0-1", -1],
      ["1.0-1", "1.0-1", 0],
      ["1.0-1+deb12u1", "1.0-1", 1],
      ["2.10", "2.9", 1],
      ["1.0a", "1.0+", -1],
    ];
    for (const [a, b, sign] of cases) expect(Math.sign(compareDebVersions(a, b))).toBe(sign);
    for (const [a, b, sign] of cases) expect(Math.sign(Bun.spawnSync(["dpkg", "--compare-versions", a, "gt", b]).exitCode === 0 ? 1 : Bun.spawnSync(["dpkg", "--compare-versions", a, "eq", b]).exitCode === 0 ? 0 : -1)).toBe(sign);
  });

  it("finds every stanza of a package, continuation lines included", () => {
    const text = "Package: a\nVersion: 1\n\nPackage: ab\nVersion: 2\n\nPackage: a\nVersion: 3\nDescription: x\n more\n";
    expect(findPackageStanzas(text, "a").map((s) => s.Version)).toEqual(["1", "3"]);
    expect(findPackageStanzas(text, "a")[1]!.Description).toBe("x\nmore");
    expect(firstDependency("linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)", "linux-image-")).toBe("linux-image-6.1.0-57-cloud-amd64");
  });

  it("reads the SHA256 list and refuses a suite mismatch or an expired Valid-Until", () => {
    const rel = parseStanza(`Codename: bookworm-security\nValid-Until: Mon, 07 Dec 2026 00:22:33 UTC\nSHA256:\n ${"a".repeat(64)} 12 main/binary-amd64/Packages\n`);
    expect(releaseSha256(rel).get("main/binary-amd64/Packages")).toEqual({ sha256: "a".repeat(64), size: 12 });
    const src = { mirror: "http://m", suite: "bookworm-security" };
    expect(() => checkRelease(rel, src, "u", new Date("2026-12-01"))).not.toThrow();
    expect(() => checkRelease(rel, src, "u", new Date("2026-12-08"))).toThrow(/u expired at 2026-12-07T00:22:33.000Z/);
    expect(() => checkRelease(rel, { ...src, suite: "bookworm" }, "u", new Date("2026-12-01"))).toThrow(/is for suite "bookworm-security", not "bookworm"/);
  });
});

describe("InRelease authentication", () => {
  const lists = "/var/lib/apt/lists";
  const real = join(lists, readdirSync(lists).find((f) => f.endsWith("_dists_bookworm_InRelease"))!);
  const gpgv = { kind: "gpgv" as const, gpgv: Bun.which("gpgv")!, keyring: "/usr/share/keyrings/debian-archive-keyring.gpg" };

  it("returns the signed text of Debian's real InRelease and refuses it altered", async () => {
    const bytes = readFileSync(real);
    const text = await verifyInRelease(bytes, "bookworm/InRelease", gpgv);
    expect(parseStanza(text.slice(0, text.indexOf("\nMD5Sum:"))).Codename).toBe("bookworm");
    const altered = Buffer.from(bytes.toString("utf8").replace("Codename: bookworm", "Codename: bookwork"));
    await expect(verifyInRelease(altered, "bookworm/InRelease", gpgv)).rejects.toThrow(/bookworm\/InRelease: signature not valid/);
  });

  it("refuses text outside the signed block", async () => {
    const bytes = Buffer.concat([readFileSync(real), Buffer.from("\nSHA256:\n evil\n")]);
    await expect(verifyInRelease(bytes, "x/InRelease", gpgv)).rejects.toThrow(/text after it/);
    expect(() => clearsignedBody("Origin: Debian\n", "y")).toThrow(/y is not a clearsigned message/);
  });

  it("with a pin, accepts exactly the pinned file", async () => {
    const bytes = readFileSync(real);
    const sum = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    expect(await verifyInRelease(bytes, "p", { kind: "pinned", sha256: new Set([sum]) })).toContain("Codename: bookworm\n");
    await expect(verifyInRelease(bytes, "p", { kind: "pinned", sha256: new Set(["0".repeat(64)]) })).rejects.toThrow(`p: sha256 ${sum} is not in AEGIS_DEBIAN_INRELEASE_SHA256`);
  });
});
