/**
 * @module scripts/formula
 * `make formula`: fill the Homebrew formula templates in packaging/homebrew/
 * (`@VERSION@`, `@RELEASE_URL@`, `@SHA256_<OS>_<ARCH>@`, `@SHA256_KIT@`)
 * from a release's SHA256SUMS and write them to `<dist>/homebrew/`, ready to
 * commit to a tap. The release URL is `AEGIS_RELEASE_URL` (default the
 * GitHub release of that version).
 *
 * Usage: `bun run scripts/formula.ts [--dist dist]`.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

/** Parse sha256sum-format lines into file name -> sha256. */
export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = line.match(/^([0-9a-f]{64}) [ *](\S+)$/);
    if (!m) throw new Error(`SHA256SUMS: malformed line "${line}"`);
    sums.set(m[2]!, m[1]!);
  }
  return sums;
}

/** Fill one template; throws naming any placeholder left without a value. */
export function fillTemplate(template: string, sums: Map<string, string>, releaseUrl: string): string {
  const kit = [...sums.keys()].find((f) => /^aegisvm-agent-kit-.+\.tar\.gz$/.test(f));
  const version = kit?.replace(/^aegisvm-agent-kit-/, "").replace(/\.tar\.gz$/, "");
  if (!version || !kit) throw new Error("SHA256SUMS lists no aegisvm-agent-kit-VERSION.tar.gz (run make release)");
  const values: Record<string, string> = { VERSION: version, RELEASE_URL: releaseUrl.replace("@VERSION@", version).replace(/\/+$/, ""), SHA256_KIT: sums.get(kit)! };
  for (const [file, sum] of sums) {
    const m = file.match(/^aegis-(.+)-(linux|darwin)-(x64|arm64)\.tar\.gz$/);
    if (m && m[1] === version) values[`SHA256_${m[2]!.toUpperCase()}_${m[3]!.toUpperCase()}`] = sum;
  }
  return template.replace(/@([A-Z0-9_]+)@/g, (_all, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`no value for @${key}@ (is its tarball in SHA256SUMS?)`);
    return v;
  });
}

function main(): void {
  const i = process.argv.indexOf("--dist");
  const dist = resolve(i >= 0 ? process.argv[i + 1]! : join(ROOT, "dist"));
  const sums = parseSums(readFileSync(join(dist, "SHA256SUMS"), "utf8"));
  const releaseUrl = process.env.AEGIS_RELEASE_URL || "https://github.com/aegisvm/aegis/releases/download/v@VERSION@";
  const out = join(dist, "homebrew");
  mkdirSync(out, { recursive: true });
  const templates = join(ROOT, "packaging", "homebrew");
  for (const f of readdirSync(templates).filter((n) => n.endsWith(".rb"))) {
    writeFileSync(join(out, f), fillTemplate(readFileSync(join(templates, f), "utf8"), sums, releaseUrl));
    process.stderr.write(`formula: wrote ${join(out, f)}\n`);
  }
}

if (import.meta.main) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`formula failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
