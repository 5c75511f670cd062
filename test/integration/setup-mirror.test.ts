/**
 * `aegis setup` without apt: the real binary fetches Debian's cloud kernel
 * and busybox-static from a local mirror of real archive files
 * (test/helpers/debian-mirror.ts), checking Debian's real signatures with
 * gpgv and the hashes down to each .deb; tampered files are refused with
 * the file and both hashes named, and leave nothing in the cache.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { buildMirror, type Mirror, serveMirror } from "../helpers/debian-mirror.ts";
import { TestHome } from "../helpers/aegis.ts";

let work: string;
let mirror: Mirror;
/** The cache the first (successful) setup filled. */
let goodCache: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aegis-mirror-"));
  mirror = await buildMirror(join(work, "good"));
}, 300_000);

const homes: string[] = [];
afterAll(() => {
  for (const dir of [work, ...homes]) rmSync(dir, { recursive: true, force: true });
});

/** Run `aegis setup --json` against a mirror tree with a fresh cache; returns the result and the cache dir. */
async function setupFrom(tree: string, extraEnv: Record<string, string> = {}, cache = mkdtempSync(join(work, "cache-"))) {
  const server = serveMirror(tree);
  const home = new TestHome();
  try {
    const res = await home.run(["setup", "--json"], {
      env: {
        AEGIS_CACHE: cache,
        AEGIS_DEBIAN_MIRROR: `${server.url}/debian`,
        AEGIS_DEBIAN_SECURITY_MIRROR: `${server.url}/debian-security`,
        AEGIS_BUSYBOX: "debian",
        ...extraEnv,
      },
    });
    return { ...res, cache, requests: server.requests };
  } finally {
    server.stop();
    homes.push(home.dir);
  }
}

/** Everything under `dir`, relative. */
function tree(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]) : [];
}

/** A copy of the good mirror with one file changed by `edit`. */
function tampered(name: string, file: string, edit: (b: Buffer) => Buffer): string {
  const dir = join(work, name);
  cpSync(mirror.dir, dir, { recursive: true });
  writeFileSync(file.replace(mirror.dir, dir), edit(readFileSync(file)));
  return dir;
}

describe("aegis setup from a Debian mirror over HTTP", () => {
  it("downloads, verifies and unpacks the newest cloud kernel and busybox-static, then builds the guest assets", async () => {
    const r = await setupFrom(mirror.dir);
    expect(r.stderr).toContain("setup: done");
    expect(r.code).toBe(0);
    goodCache = r.cache;
    const assets = JSON.parse(r.stdout) as { kernel: string; kernelVersion: string };
    expect(assets.kernelVersion).toBe(mirror.kernelPackage.replace(/^linux-image-/, ""));
    expect(existsSync(assets.kernel)).toBe(true);
    // Fetched from our mirror, each index in the compression the mirror offers (xz, gz, plain).
    expect(r.requests).toContain("/debian/dists/bookworm/InRelease");
    expect(r.requests).toContain("/debian-security/dists/bookworm-security/InRelease");
    expect(r.requests).toContain(`/${mirror.kernelDeb.slice(mirror.dir.length + 1)}`);
    expect(r.requests).toContain(`/${mirror.busyboxDeb.slice(mirror.dir.length + 1)}`);
    expect(r.requests.filter((p) => p.endsWith("/Packages") || p.endsWith("/Packages.gz") || p.endsWith("/Packages.xz")).length).toBeGreaterThanOrEqual(3);
    // Progress on stderr: the download with percentages.
    expect(r.stderr).toMatch(new RegExp(`downloading ${basename(mirror.kernelDeb).replace(/[.+]/g, "\\$&")} \\(\\d+\\.\\d MB\\)`));
    expect(r.stderr).toMatch(/\(\d+%\)/);
    expect(existsSync(join(r.cache, "kernels", mirror.kernelPackage, "boot"))).toBe(true);
    expect(tree(join(r.cache, "busybox")).some((p) => p.endsWith("bin/busybox"))).toBe(true);

    // A second setup with the same cache downloads no package and no index again.
    const again = await setupFrom(mirror.dir, {}, r.cache);
    expect(again.code).toBe(0);
    expect(again.requests.filter((p) => p.endsWith(".deb") || p.includes("/Packages"))).toEqual([]);
  }, 240_000);

  it("refuses a tampered kernel .deb, naming it with the expected and actual sha256, and caches nothing of it", async () => {
    const dir = tampered("bad-deb", mirror.kernelDeb, (b) => {
      b[b.length - 100] = b[b.length - 100]! ^ 0xff;
      return b;
    });
    const r = await setupFrom(dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`${basename(mirror.kernelDeb).replace(/[.+]/g, "\\$&")}: sha256 mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64}`));
    expect(tree(join(r.cache, "kernels"))).toEqual([]);
  }, 120_000);

  it("refuses a Packages index that does not match the signed InRelease, naming the file and both hashes", async () => {
    const packagesGz = join(mirror.dir, "debian/dists/bookworm/main/binary-amd64/Packages.gz");
    const dir = tampered("bad-packages", packagesGz, (b) => {
      // Same length, one package's hash changed: only the signed sha256 can tell.
      const text = Buffer.from(Bun.gunzipSync(new Uint8Array(b))).toString("latin1").replace(/^SHA256: [0-9a-f]/m, "SHA256: x");
      return Buffer.from(Bun.gzipSync(Buffer.from(text, "latin1")));
    });
    const r = await setupFrom(dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/dists\/bookworm\/main\/binary-amd64\/Packages\.gz: sha256 mismatch: expected [0-9a-f]{64} \(\d+ bytes, signed in .*InRelease\), got [0-9a-f]{64}/);
    expect(tree(join(r.cache, "kernels"))).toEqual([]);
    expect(tree(join(r.cache, "debian", "indexes")).some((f) => f.includes(".tmp"))).toBe(false);
  }, 120_000);

  it("refuses an InRelease whose signed text was altered", async () => {
    const inRelease = join(mirror.dir, "debian/dists/bookworm-updates/InRelease");
    const dir = tampered("bad-inrelease", inRelease, (b) => Buffer.from(b.toString("utf8").replace("Label: Debian", "Label: Debiam")));
    const r = await setupFrom(dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("bookworm-updates/InRelease: signature not valid against");
    expect(tree(join(r.cache, "kernels"))).toEqual([]);
  }, 120_000);

  it("trusts InRelease files pinned by sha256 instead of gpgv, and refuses an unpinned one", async () => {
    const sums = ["debian/dists/bookworm", "debian/dists/bookworm-updates", "debian-security/dists/bookworm-security"].map((d) =>
      new Bun.CryptoHasher("sha256").update(readFileSync(join(mirror.dir, d, "InRelease"))).digest("hex"),
    );
    const ok = await setupFrom(mirror.dir, { AEGIS_DEBIAN_INRELEASE_SHA256: sums.join(",") }, goodCache);
    expect(ok.stderr).toContain("setup: done");
    expect(ok.code).toBe(0);
    const refused = await setupFrom(mirror.dir, { AEGIS_DEBIAN_INRELEASE_SHA256: sums.slice(0, 2).join(",") }, mkdtempSync(join(work, "cache-")));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`bookworm-security/InRelease: sha256 ${sums[2]} is not in AEGIS_DEBIAN_INRELEASE_SHA256`);
  }, 120_000);

  it("refuses to fetch when it can neither run gpgv nor match a pinned sha256", async () => {
    const r = await setupFrom(mirror.dir, { PATH: "/nonexistent" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("cannot authenticate the Debian archive: gpgv not found");
    expect(r.stderr).toContain("AEGIS_DEBIAN_INRELEASE_SHA256");
    expect(tree(join(r.cache, "kernels"))).toEqual([]);
  }, 60_000);
});
