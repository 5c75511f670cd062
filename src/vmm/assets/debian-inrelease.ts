/**
 * @module vmm/assets/debian-inrelease
 * Deciding whether to trust a suite's `InRelease` (the clearsigned Release
 * file that lists the sha256 of every index), which anchors the whole chain
 * InRelease -> Packages -> .deb. Two ways, as the setup docs say:
 *
 * - `gpgv` with a Debian keyring (`AEGIS_DEBIAN_KEYRING`, default
 *   `/usr/share/keyrings/debian-archive-keyring.gpg`, else the copy that
 *   release tarballs ship beside the binary, or `../share/aegis/` from it as
 *   install.sh and Homebrew place it). At least one good signature
 *   and no bad one is required, as apt does; the text we go on to read is
 *   gpgv's own `--output` (the signed part only), so nothing outside the
 *   signature can slip in.
 * - A pinned fingerprint: `AEGIS_DEBIAN_INRELEASE_SHA256` lists sha256 sums
 *   (comma-separated) of InRelease files the user checked elsewhere. This is
 *   for hosts without gpgv or a keyring; an unlisted file is refused.
 *
 * Neither available: refused, with a hint naming both.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** How InRelease files are authenticated. */
export type Trust = { kind: "gpgv"; gpgv: string; keyring: string } | { kind: "pinned"; sha256: Set<string> };

/** Pick the trust anchor from the environment (see the module docs). Throws when there is none. */
export function trustFromEnv(env = process.env, exeDir = dirname(realpathSync(process.execPath))): Trust {
  const pins = (env.AEGIS_DEBIAN_INRELEASE_SHA256 ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const p of pins) {
    if (!/^[0-9a-f]{64}$/.test(p)) throw new Error(`AEGIS_DEBIAN_INRELEASE_SHA256: "${p}" is not a sha256 (64 hex digits)`);
  }
  const keyring = env.AEGIS_DEBIAN_KEYRING || ["/usr/share/keyrings/debian-archive-keyring.gpg", join(exeDir, "debian-archive-keyring.gpg"), join(exeDir, "..", "share", "aegis", "debian-archive-keyring.gpg")].find((k) => existsSync(k));
  if (env.AEGIS_DEBIAN_KEYRING && !existsSync(env.AEGIS_DEBIAN_KEYRING)) throw new Error(`AEGIS_DEBIAN_KEYRING=${env.AEGIS_DEBIAN_KEYRING} does not exist`);
  const gpgv = Bun.which("gpgv", { PATH: env.PATH ?? "/usr/bin:/bin" });
  if (pins.length > 0) return { kind: "pinned", sha256: new Set(pins) };
  if (gpgv && keyring) return { kind: "gpgv", gpgv, keyring };
  throw new Error(
    `cannot authenticate the Debian archive: ${gpgv ? "no Debian keyring found" : "gpgv not found"}\n` +
      "hint: install gpgv and debian-archive-keyring (macOS: brew install gnupg; the release tarball ships the keyring), " +
      "set AEGIS_DEBIAN_KEYRING=/path/to/debian-archive-keyring.gpg, or pin InRelease files you verified with AEGIS_DEBIAN_INRELEASE_SHA256=<sha256>[,...]",
  );
}

/** The body of a clearsigned message, dash-unescaped (RFC 4880 §7.1), or throws when the framing is wrong. */
export function clearsignedBody(text: string, label: string): string {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines[0] !== "-----BEGIN PGP SIGNED MESSAGE-----") throw new Error(`${label} is not a clearsigned message`);
  let i = 1;
  while (i < lines.length && lines[i] !== "") i++; // armor headers ("Hash: SHA512")
  const start = i + 1;
  const sig = lines.indexOf("-----BEGIN PGP SIGNATURE-----", start);
  const end = lines.indexOf("-----END PGP SIGNATURE-----", sig);
  if (sig < 0 || end < 0 || lines.slice(end + 1).some((l) => l.trim() !== "")) throw new Error(`${label}: malformed clearsigned message (signature block missing or text after it)`);
  return `${lines.slice(start, sig).map((l) => (l.startsWith("- ") ? l.slice(2) : l)).join("\n")}\n`;
}

/** Authenticate `bytes` (an InRelease fetched from `url`) and return the signed Release text. */
export async function verifyInRelease(bytes: Uint8Array, url: string, trust: Trust): Promise<string> {
  const text = new TextDecoder().decode(bytes);
  if (trust.kind === "pinned") {
    const sum = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    if (!trust.sha256.has(sum)) throw new Error(`${url}: sha256 ${sum} is not in AEGIS_DEBIAN_INRELEASE_SHA256\nhint: check this file against a trusted copy and add its sha256, or install gpgv and the Debian keyring`);
    return clearsignedBody(text, url);
  }
  clearsignedBody(text, url); // framing check before gpgv sees it
  const dir = mkdtempSync(join(tmpdir(), "aegis-gpgv-"));
  try {
    writeFileSync(join(dir, "InRelease"), bytes);
    const proc = Bun.spawn([trust.gpgv, "--status-fd", "1", "--keyring", trust.keyring, "--output", join(dir, "Release"), join(dir, "InRelease")], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { LANG: "C", LC_ALL: "C", HOME: dir, PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    const [status, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const good = status.split("\n").filter((l) => l.startsWith("[GNUPG:] GOODSIG ")).length;
    const bad = status.split("\n").filter((l) => /^\[GNUPG:\] (BADSIG|EXPKEYSIG|REVKEYSIG) /.test(l));
    if (good === 0 || bad.length > 0 || !existsSync(join(dir, "Release"))) {
      const why = bad[0] ?? err.trim().split("\n").filter((l) => !l.includes("Signature made") && !l.includes("using ")).join("; ");
      throw new Error(`${url}: signature not valid against ${trust.keyring} (${why || "no good signature"})\nhint: the mirror may be tampered with or out of date; check AEGIS_DEBIAN_MIRROR and AEGIS_DEBIAN_KEYRING`);
    }
    return readFileSync(join(dir, "Release"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
