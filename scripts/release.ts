/**
 * @module scripts/release
 * `make release`: cross-compile the one binary for every supported platform
 * with build.ts (`bun build --compile --target=bun-OS-ARCH`; Bun fetches the
 * target runtimes from the npm registry), pack each as
 * `dist/aegis-VERSION-OS-ARCH.tar.gz` (`aegis`, the role links as symlinks,
 * LICENSE, README.md and, when the build host has it, Debian's archive
 * keyring so `aegis setup` can check signatures on hosts without one), pack
 * the Agent Kit manifest as `dist/aegisvm-agent-kit-VERSION.tar.gz`, copy
 * packaging/install.sh beside them, write
 * `dist/SHA256SUMS` (sha256sum format) and smoke-test the artefact of this
 * host (`aegis --version`, `aegis help`, a role link) unpacked with the
 * system tar in a fresh directory.
 *
 * Usage: `bun run scripts/release.ts [--targets linux-x64,darwin-arm64] [--outdir dist]`.
 * Tarballs are reproducible for identical binaries: fixed mtime
 * (SOURCE_DATE_EPOCH, default 0), no owner names.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create } from "tar";
import pkg from "../package.json" with { type: "json" };

/** Release platforms, as `OS-ARCH` (Bun's target is `bun-OS-ARCH`). */
export const TARGETS = ["linux-x64", "linux-arm64", "darwin-arm64", "darwin-x64"] as const;

const ROOT = resolve(import.meta.dir, "..");
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function sh(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const proc = Bun.spawn(argv, { cwd: opts.cwd ?? ROOT, env: opts.env ?? (process.env as Record<string, string>), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code}): ${err.trim() || out.trim()}`);
  return out;
}

async function tarGz(cwd: string, entry: string, dest: string): Promise<void> {
  const mtime = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000);
  await create({ cwd, file: dest, gzip: { level: 6 }, portable: true, mtime }, [entry]);
}

async function sha256(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

/** The host's release target, or undefined when it is not one we ship. */
export function hostTarget(): string | undefined {
  const t = `${process.platform}-${process.arch}`;
  return (TARGETS as readonly string[]).includes(t) ? t : undefined;
}

/** Unpack `tarball` with the system tar in a fresh directory and run the binary as a user would. */
export async function smokeTest(tarball: string, version: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "aegis-smoke-"));
  try {
    await sh(["tar", "-xzf", tarball, "-C", dir]);
    const top = readdirSync(dir);
    if (top.length !== 1) throw new Error(`${tarball}: expected one top-level directory, found ${top.join(", ")}`);
    const bin = join(dir, top[0]!);
    const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: dir, AEGIS_HOME: join(dir, "home") };
    const v = (await sh([join(bin, "aegis"), "--version"], { cwd: dir, env })).trim();
    if (v !== `aegis ${version}`) throw new Error(`${tarball}: aegis --version printed "${v}", expected "aegis ${version}"`);
    const help = await sh([join(bin, "aegis"), "help"], { cwd: dir, env });
    if (!help.includes("USAGE aegis") || !help.includes("setup")) throw new Error(`${tarball}: aegis help printed no usage:\n${help}`);
    // A role link resolves to the same binary, which picks its role from argv[0].
    const gw = await sh(["aegis-gateway", "--help"], { cwd: dir, env });
    if (!gw.startsWith("usage: aegis-gateway")) throw new Error(`${tarball}: role link aegis-gateway did not run the gateway role:\n${gw}`);
    process.stderr.write(`release: smoke test of ${top[0]} passed (${v})\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const version = process.env.AEGIS_VERSION ?? pkg.version;
  const outdir = resolve(flag("--outdir") ?? join(ROOT, "dist"));
  const targets = (flag("--targets") ?? TARGETS.join(",")).split(",");
  for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`unknown target "${t}" (known: ${TARGETS.join(", ")})`);
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const t0 = performance.now();
  const artefacts: string[] = [];
  for (const t of targets) {
    const name = `aegis-${version}-${t}`;
    const dir = join(outdir, name);
    process.stderr.write(`release: building ${name}\n`);
    await sh(["bun", "run", "build.ts", "--target", `bun-${t}`, "--outdir", dir], { env: { ...(process.env as Record<string, string>), AEGIS_VERSION: version } });
    copyFileSync(join(ROOT, "LICENSE"), join(dir, "LICENSE"));
    copyFileSync(join(ROOT, "README.md"), join(dir, "README.md"));
    if (existsSync(KEYRING)) copyFileSync(KEYRING, join(dir, "debian-archive-keyring.gpg"));
    await tarGz(outdir, name, join(outdir, `${name}.tar.gz`));
    rmSync(dir, { recursive: true });
    artefacts.push(`${name}.tar.gz`);
  }
  const kit = `aegisvm-agent-kit-${version}`;
  mkdirSync(join(outdir, kit));
  copyFileSync(join(ROOT, "kits", "agent.yaml"), join(outdir, kit, "agent.yaml"));
  copyFileSync(join(ROOT, "LICENSE"), join(outdir, kit, "LICENSE"));
  await tarGz(outdir, kit, join(outdir, `${kit}.tar.gz`));
  rmSync(join(outdir, kit), { recursive: true });
  artefacts.push(`${kit}.tar.gz`);
  // install.sh goes up with the release, so `curl .../latest/download/install.sh | sh` works.
  copyFileSync(join(ROOT, "packaging", "install.sh"), join(outdir, "install.sh"));
  artefacts.push("install.sh");

  const sums = await Promise.all(artefacts.sort().map(async (a) => `${await sha256(join(outdir, a))}  ${a}\n`));
  writeFileSync(join(outdir, "SHA256SUMS"), sums.join(""));
  process.stderr.write(`release: ${artefacts.length} artefacts and SHA256SUMS in ${outdir} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);

  const host = hostTarget();
  if (host && targets.includes(host)) await smokeTest(join(outdir, `aegis-${version}-${host}.tar.gz`), version);
  else process.stderr.write(`release: no artefact for this host (${process.platform}-${process.arch}); smoke test skipped\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`release failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
