/**
 * The distribution path end to end: `scripts/release.ts` (what `make
 * release` runs) builds all four tarballs, SHA256SUMS and smoke-tests the
 * linux-x64 one; `scripts/formula.ts` (`make formula`) fills the Homebrew
 * formulae, which `ruby -c` accepts (Homebrew itself cannot be installed
 * here); `packaging/install.sh` installs from a local HTTP server serving
 * that dist/ into a temporary HOME, and refuses a tarball whose sha256 does
 * not match.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { repoRoot } from "../helpers/aegis.ts";

const version = pkg.version;
const TARGETS = ["linux-x64", "linux-arm64", "darwin-arm64", "darwin-x64"];
let work: string;
let dist: string;
let releaseLog = "";

async function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn(argv, { cwd: opts.cwd ?? repoRoot, env: opts.env ?? (process.env as Record<string, string>), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aegis-release-"));
  dist = join(work, "dist");
  const t0 = performance.now();
  const r = await run(["bun", "run", "scripts/release.ts", "--outdir", dist]);
  releaseLog = r.stderr;
  process.stderr.write(`release build of ${TARGETS.length} targets: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  if (r.code !== 0) throw new Error(`release failed: ${r.stderr}`);
}, 400_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

function serve(dir: string) {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const name = new URL(req.url).pathname.slice(1);
      if (name.includes("/") || !existsSync(join(dir, name))) return new Response("not found", { status: 404 });
      return new Response(Bun.file(join(dir, name)));
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

describe("make release", () => {
  it("writes one tarball per platform plus the kit and install.sh, all listed in a SHA256SUMS that sha256sum -c accepts", async () => {
    const sums = readFileSync(join(dist, "SHA256SUMS"), "utf8");
    const names = sums.trim().split("\n").map((l) => l.split("  ")[1]);
    expect(names).toEqual([...TARGETS.map((t) => `aegis-${version}-${t}.tar.gz`), `aegisvm-agent-kit-${version}.tar.gz`, "install.sh"].sort());
    const check = await run(["sha256sum", "-c", "SHA256SUMS"], { cwd: dist });
    expect(check.code).toBe(0);
    expect(check.stdout.match(/: OK$/gm)?.length).toBe(6);
  });

  it("packs the binary of each platform with the role links as symlinks, LICENSE and README.md", async () => {
    const magic: Record<string, string> = { "linux-x64": "x86-64", "linux-arm64": "aarch64", "darwin-arm64": "Mach-O 64-bit arm64", "darwin-x64": "Mach-O 64-bit x86_64" };
    for (const t of TARGETS) {
      const dir = join(work, `x-${t}`);
      expect((await run(["mkdir", "-p", dir])).code).toBe(0);
      expect((await run(["tar", "-xzf", join(dist, `aegis-${version}-${t}.tar.gz`), "-C", dir])).code).toBe(0);
      const top = join(dir, `aegis-${version}-${t}`);
      for (const f of ["aegis", "LICENSE", "README.md"]) expect(existsSync(join(top, f))).toBe(true);
      for (const link of ["aegisd", "aegis-gateway", "aegis-harness", "aegis-agent", "aegis-vmm-worker", "aegis-mcp-guest"]) {
        expect(lstatSync(join(top, link)).isSymbolicLink()).toBe(true);
        expect(readlinkSync(join(top, link))).toBe("aegis");
      }
      expect((await run(["file", "-b", join(top, "aegis")])).stdout).toContain(magic[t]!);
      expect(readFileSync(join(top, "LICENSE"), "utf8")).toContain("Apache License");
    }
  }, 120_000);

  it("smoke-tested the linux-x64 artefact from a clean directory", () => {
    expect(releaseLog).toContain(`release: smoke test of aegis-${version}-linux-x64 passed (aegis ${version})`);
  });
});

describe("make formula", () => {
  it("fills version, URLs and every sha256 from SHA256SUMS into formulae that ruby -c accepts", async () => {
    const r = await run(["bun", "run", "scripts/formula.ts", "--dist", dist], { env: { ...(process.env as Record<string, string>), AEGIS_RELEASE_URL: "https://example.invalid/rel/v@VERSION@" } });
    expect(r.code).toBe(0);
    const sums = new Map(readFileSync(join(dist, "SHA256SUMS"), "utf8").trim().split("\n").map((l) => [l.split("  ")[1]!, l.split("  ")[0]!] as const));
    const aegis = readFileSync(join(dist, "homebrew", "aegis.rb"), "utf8");
    const kit = readFileSync(join(dist, "homebrew", "aegisvm-agent-kit.rb"), "utf8");
    for (const t of TARGETS) {
      expect(aegis).toContain(`url "https://example.invalid/rel/v${version}/aegis-${version}-${t}.tar.gz"`);
      expect(aegis).toContain(`sha256 "${sums.get(`aegis-${version}-${t}.tar.gz`)}"`);
    }
    expect(kit).toContain(`sha256 "${sums.get(`aegisvm-agent-kit-${version}.tar.gz`)}"`);
    expect(aegis).toContain('depends_on "qemu"');
    expect(aegis).toContain('depends_on "e2fsprogs"');
    expect(kit).toContain('"kit", "install"');
    for (const text of [aegis, kit]) expect(text).not.toMatch(/@[A-Z0-9_]+@/);
    for (const f of ["homebrew/aegis.rb", "homebrew/aegisvm-agent-kit.rb"]) {
      const c = await run(["ruby", "-c", join(dist, f)]);
      expect(c.stdout.trim()).toBe("Syntax OK");
    }
  });

  it("refuses a SHA256SUMS that lacks a platform's tarball, naming the placeholder", async () => {
    const partial = join(work, "partial");
    cpSync(dist, partial, { recursive: true });
    writeFileSync(join(partial, "SHA256SUMS"), readFileSync(join(dist, "SHA256SUMS"), "utf8").split("\n").filter((l) => !l.includes("darwin-x64")).join("\n"));
    const r = await run(["bun", "run", "scripts/formula.ts", "--dist", partial]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no value for @SHA256_DARWIN_X64@");
  });
});

describe("packaging/install.sh", () => {
  it("downloads, verifies and installs the release for this host into the install dir, then prints next steps", async () => {
    const server = serve(dist);
    try {
      const home = join(work, "home");
      const dest = join(home, "opt", "bin");
      const r = await run(["sh", join(repoRoot, "packaging", "install.sh")], { env: { PATH: "/usr/bin:/bin", HOME: home, AEGIS_RELEASE_URL: server.url, AEGIS_INSTALL_DIR: dest } });
      expect(r.stderr).toContain("Next steps:");
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`Installed aegis ${version} to ${dest}`);
      expect(r.stderr).toContain(`${dest} is not on your PATH`);
      expect((await run([join(dest, "aegis"), "--version"])).stdout.trim()).toBe(`aegis ${version}`);
      expect(readlinkSync(join(dest, "aegisd"))).toBe("aegis");
      expect(existsSync(join(home, "opt", "share", "aegis", "debian-archive-keyring.gpg"))).toBe(true);
    } finally {
      server.stop();
    }
  }, 60_000);

  it("refuses a tarball whose sha256 does not match SHA256SUMS and installs nothing", async () => {
    const bad = join(work, "bad-dist");
    cpSync(dist, bad, { recursive: true });
    const name = `aegis-${version}-linux-x64.tar.gz`;
    writeFileSync(join(bad, "SHA256SUMS"), readFileSync(join(dist, "SHA256SUMS"), "utf8").replace(/^[0-9a-f]{64}(?=  aegis-[^ ]+-linux-x64)/m, "0".repeat(64)));
    const server = serve(bad);
    try {
      const dest = join(work, "bad-home", "bin");
      const r = await run(["sh", join(repoRoot, "packaging", "install.sh")], { env: { PATH: "/usr/bin:/bin", HOME: join(work, "bad-home"), AEGIS_RELEASE_URL: server.url, AEGIS_INSTALL_DIR: dest } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`checksum mismatch for ${name.replace(/\./g, "\\.")}: expected 0{64}, got [0-9a-f]{64} \\(nothing was installed\\)`));
      expect(existsSync(dest)).toBe(false);
    } finally {
      server.stop();
    }
  }, 60_000);

  it("installs to /usr/local/bin as root and to ~/.local/bin otherwise", async () => {
    const script = join(repoRoot, "packaging", "install.sh");
    const asRoot = await run(["sh", script, "--print-install-dir"], { env: { PATH: "/usr/bin:/bin", HOME: "/root" } });
    expect(process.getuid?.()).toBe(0); // the test runs as root, like CI
    expect(asRoot.stdout.trim()).toBe("/usr/local/bin");
    const home = mkdtempSync(join(tmpdir(), "aegis-user-"));
    try {
      const asUser = await run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", script, "--print-install-dir"], { env: { PATH: "/usr/bin:/bin", HOME: home } });
      expect(asUser.stdout.trim()).toBe(`${home}/.local/bin`);
      const unknown = await run(["sh", script, "--bogus"]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("unknown argument '--bogus'");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
