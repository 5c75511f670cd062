/**
 * @module vmm/assets/debian-archive
 * Fetching Debian binary packages over HTTP(S) without apt, for hosts that
 * have none (macOS, other distributions) or when asked
 * (`AEGIS_DEBIAN_FETCH=http`). Every byte is checked along the archive's own
 * chain: the suite's `InRelease` is authenticated (see
 * {@link verifyInRelease}), its `SHA256:` list gives the hash of
 * `main/binary-<arch>/Packages`, and that index gives the sha256 and size of
 * each `.deb`.
 *
 * Configuration (environment):
 * - `AEGIS_DEBIAN_MIRROR` (default `https://deb.debian.org/debian`) serves
 *   the release suite and `-updates`;
 * - `AEGIS_DEBIAN_SECURITY_MIRROR` (default
 *   `https://security.debian.org/debian-security`) serves `-security`;
 * - `AEGIS_DEBIAN_SUITES` (default `bookworm,bookworm-updates,bookworm-security`);
 *   a package present in several suites is taken at its highest version, as
 *   apt would.
 *
 * The suite's `Codename`/`Suite` must name the suite asked for and an
 * expired `Valid-Until` is refused (a replayed old, vulnerable index).
 * Indexes are fetched as `Packages.xz`, `.gz` or plain (the first the mirror
 * has) and checked after decompression against the signed uncompressed hash;
 * verified indexes are cached by that hash under `<cache>/debian/indexes/`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { compareDebVersions, findPackageStanzas, parseStanza, releaseSha256, type Stanza } from "./debian-control.ts";
import { trustFromEnv, verifyInRelease, type Trust } from "./debian-inrelease.ts";
import { downloadVerified, fetchBytes, HttpError, mb } from "./download.ts";
import { findTool } from "./exec.ts";

/** One suite on one mirror. */
export interface Source {
  mirror: string;
  suite: string;
}

/** Where and what to fetch. */
export interface ArchiveConfig {
  sources: Source[];
  /** Debian architecture name (`amd64`, `arm64`). */
  arch: string;
  /** Cache base (`AEGIS_CACHE`); indexes go to `<cacheDir>/debian/indexes`. */
  cacheDir: string;
  trust: () => Trust;
}

/** A package found in the archive, with what its .deb must hash to. */
export interface ArchivePackage {
  name: string;
  version: string;
  arch: string;
  url: string;
  filename: string;
  sha256: string;
  size: number;
  depends: string;
  source: Source;
}

const SUITE_NAME = /^[a-z0-9][a-z0-9.+-]*$/;

/** The archive configuration from the environment (see the module docs). */
export function archiveConfig(arch: string, cacheDir: string, env = process.env): ArchiveConfig {
  const mirror = trimSlash(env.AEGIS_DEBIAN_MIRROR || "https://deb.debian.org/debian");
  const security = trimSlash(env.AEGIS_DEBIAN_SECURITY_MIRROR || "https://security.debian.org/debian-security");
  for (const [name, url] of [["AEGIS_DEBIAN_MIRROR", mirror], ["AEGIS_DEBIAN_SECURITY_MIRROR", security]] as const) {
    if (!/^https?:\/\/[^/]+/.test(url)) throw new Error(`${name}=${url} is not an http(s) URL\nhint: e.g. ${name}=https://deb.debian.org/debian`);
  }
  const suites = (env.AEGIS_DEBIAN_SUITES || "bookworm,bookworm-updates,bookworm-security").split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of suites) if (!SUITE_NAME.test(s)) throw new Error(`AEGIS_DEBIAN_SUITES: "${s}" is not a suite name`);
  if (suites.length === 0) throw new Error("AEGIS_DEBIAN_SUITES is empty");
  return {
    sources: suites.map((suite) => ({ suite, mirror: suite.endsWith("-security") ? security : mirror })),
    arch,
    cacheDir,
    trust: () => trustFromEnv(env),
  };
}

function trimSlash(s: string): string {
  return s.replace(/\/+$/, "");
}

/** Check the Release fields that protect against a substituted or replayed suite. */
export function checkRelease(release: Stanza, source: Source, url: string, now = new Date()): void {
  if (release.Codename !== source.suite && release.Suite !== source.suite) {
    throw new Error(`${url} is for suite "${release.Codename ?? release.Suite}", not "${source.suite}"\nhint: check AEGIS_DEBIAN_MIRROR / AEGIS_DEBIAN_SUITES`);
  }
  if (release["Valid-Until"]) {
    const until = new Date(release["Valid-Until"]);
    if (Number.isNaN(until.getTime())) throw new Error(`${url}: unreadable Valid-Until "${release["Valid-Until"]}"`);
    if (until < now) throw new Error(`${url} expired at ${until.toISOString()} (Valid-Until)\nhint: the mirror is out of date or replaying an old index; use another AEGIS_DEBIAN_MIRROR`);
  }
}

async function decompress(bytes: Uint8Array, ext: string, size: number, label: string): Promise<Uint8Array> {
  if (ext === "") return bytes;
  if (ext === ".gz") {
    try {
      return gunzipSync(bytes, { maxOutputLength: size });
    } catch (err) {
      if (err instanceof RangeError) throw new Error(`${label}: decompresses to more than the signed ${size} bytes; refusing it`);
      throw new Error(`${label}: not valid gzip (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  const proc = Bun.spawn([findTool("xz"), "-dc"], { stdin: bytes, stdout: "pipe", stderr: "pipe", env: { LANG: "C", LC_ALL: "C" } });
  const parts: Uint8Array[] = [];
  let total = 0;
  const err = new Response(proc.stderr).text();
  for await (const chunk of proc.stdout) {
    total += chunk.length;
    if (total > size) {
      proc.kill();
      break;
    }
    parts.push(chunk);
  }
  const code = await proc.exited;
  if (total > size) throw new Error(`${label}: decompresses to more than the signed ${size} bytes; refusing it`);
  if (code !== 0) throw new Error(`${label}: xz -dc failed (exit ${code}): ${(await err).trim()}`);
  return Buffer.concat(parts, total);
}

/** Fetch, authenticate and return the `Packages` index of one suite (cached by its signed hash). */
export async function loadPackages(cfg: ArchiveConfig, source: Source, progress: (msg: string) => void): Promise<string> {
  const base = `${source.mirror}/dists/${source.suite}`;
  const inReleaseUrl = `${base}/InRelease`;
  progress(`fetching ${inReleaseUrl}`);
  const release = parseStanza(await verifyInRelease(await fetchBytes(inReleaseUrl, 16 << 20), inReleaseUrl, cfg.trust()));
  checkRelease(release, source, inReleaseUrl);
  const path = `main/binary-${cfg.arch}/Packages`;
  const want = releaseSha256(release).get(path);
  if (!want) throw new Error(`${inReleaseUrl} lists no ${path}\nhint: does the suite carry architecture ${cfg.arch}?`);

  const indexes = join(cfg.cacheDir, "debian", "indexes");
  const cached = join(indexes, want.sha256);
  if (existsSync(cached)) {
    const bytes = readFileSync(cached);
    if (new Bun.CryptoHasher("sha256").update(bytes).digest("hex") === want.sha256) return bytes.toString("utf8");
  }
  for (const ext of [".xz", ".gz", ""]) {
    const url = `${base}/${path}${ext}`;
    let raw: Uint8Array;
    try {
      progress(`fetching ${url} (index of ${source.suite}, ${mb(want.size)} unpacked)`);
      raw = await fetchBytes(url, want.size + (1 << 20));
    } catch (err) {
      if (err instanceof HttpError && err.status === 404) continue;
      throw err;
    }
    const bytes = await decompress(raw, ext, want.size, url);
    const sum = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    if (sum !== want.sha256 || bytes.length !== want.size) {
      throw new Error(`${url}: sha256 mismatch: expected ${want.sha256} (${want.size} bytes, signed in ${inReleaseUrl}), got ${sum} (${bytes.length} bytes)\nhint: the mirror is inconsistent or tampered with; nothing was installed`);
    }
    mkdirSync(indexes, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, cached);
    return Buffer.from(bytes).toString("utf8");
  }
  throw new Error(`${base}/${path}{.xz,.gz,}: not found on the mirror (HTTP 404)`);
}

/** Lazily loaded indexes of every configured suite. */
export class DebianArchive {
  private readonly loaded = new Map<Source, string>();

  constructor(
    readonly cfg: ArchiveConfig,
    private readonly progress: (msg: string) => void,
  ) {}

  private async packages(source: Source): Promise<string> {
    let text = this.loaded.get(source);
    if (text === undefined) {
      text = await loadPackages(this.cfg, source, this.progress);
      this.loaded.set(source, text);
    }
    return text;
  }

  /** The highest version of `name` across the suites, or throws naming where it looked. */
  async find(name: string): Promise<ArchivePackage> {
    let best: ArchivePackage | undefined;
    for (const source of this.cfg.sources) {
      for (const s of findPackageStanzas(await this.packages(source), name)) {
        if (!s.Version || !s.Filename || !s.SHA256 || !s.Size) throw new Error(`${source.suite}: stanza of ${name} lacks Version/Filename/SHA256/Size`);
        if (s.Filename.split("/").includes("..") || s.Filename.startsWith("/")) throw new Error(`${source.suite}: ${name} has an unsafe Filename "${s.Filename}"`);
        if (!/^[0-9a-f]{64}$/.test(s.SHA256)) throw new Error(`${source.suite}: ${name} has a malformed SHA256`);
        const pkg: ArchivePackage = {
          name,
          version: s.Version,
          arch: s.Architecture ?? this.cfg.arch,
          filename: s.Filename.split("/").at(-1)!,
          url: `${source.mirror}/${s.Filename}`,
          sha256: s.SHA256,
          size: Number(s.Size),
          depends: s.Depends ?? "",
          source,
        };
        if (!best || compareDebVersions(pkg.version, best.version) > 0) best = pkg;
      }
    }
    if (!best) throw new Error(`package ${name} not found in ${this.cfg.sources.map((s) => `${s.mirror} ${s.suite}`).join(", ")} (${this.cfg.arch})`);
    return best;
  }

  /** Download the verified .deb of `pkg` into `dir`; returns its path. */
  async download(pkg: ArchivePackage, dir: string): Promise<string> {
    mkdirSync(dir, { recursive: true });
    const dest = join(dir, pkg.filename);
    await downloadVerified(pkg.url, dest, { sha256: pkg.sha256, size: pkg.size, maxBytes: pkg.size }, pkg.filename, this.progress);
    return dest;
  }
}
