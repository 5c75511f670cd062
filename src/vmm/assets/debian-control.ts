/**
 * @module vmm/assets/debian-control
 * Reading Debian archive metadata: control stanzas (the format of
 * `Packages` and `Release`), the `SHA256:` file list of a Release, and
 * Debian version ordering (the `dpkg --compare-versions` algorithm from
 * deb-version(7)), which decides between the same package in `bookworm`,
 * `bookworm-updates` and `bookworm-security`.
 */

/** One control stanza: field name (as written) -> value (continuation lines joined with "\n"). */
export type Stanza = Record<string, string>;

/** Parse one stanza (no blank lines inside). */
export function parseStanza(text: string): Stanza {
  const out: Stanza = {};
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if ((line[0] === " " || line[0] === "\t") && last !== undefined) {
      out[last] += `\n${line.slice(1)}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`malformed control line "${line.slice(0, 80)}"`);
    last = line.slice(0, colon);
    out[last] = line.slice(colon + 1).trim();
  }
  return out;
}

/**
 * Every stanza of a `Packages` file whose `Package:` is `name`. It scans for
 * the field rather than parsing the whole file: bookworm's main index is
 * ~45 MB and we need two packages from it.
 */
export function findPackageStanzas(packages: string, name: string): Stanza[] {
  const needle = `Package: ${name}\n`;
  const found: Stanza[] = [];
  let at = packages.startsWith(needle) ? 0 : packages.indexOf(`\n${needle}`);
  while (at >= 0) {
    const start = packages[at] === "\n" ? at + 1 : at;
    const end = packages.indexOf("\n\n", start);
    found.push(parseStanza(packages.slice(start, end < 0 ? undefined : end)));
    at = end < 0 ? -1 : packages.indexOf(`\n${needle}`, end);
  }
  return found;
}

/** A file listed in a Release file's SHA256 field. */
export interface ReleaseFile {
  sha256: string;
  size: number;
}

/** The `SHA256:` list of a Release/InRelease body: path -> hash and size. */
export function releaseSha256(release: Stanza): Map<string, ReleaseFile> {
  const list = release.SHA256;
  if (!list) throw new Error("Release has no SHA256 field");
  const files = new Map<string, ReleaseFile>();
  for (const line of list.split("\n")) {
    const m = line.trim().match(/^([0-9a-f]{64})\s+(\d+)\s+(\S+)$/);
    if (m) files.set(m[3]!, { sha256: m[1]!, size: Number(m[2]) });
  }
  return files;
}

/** deb-version(7) character order: `~` sorts before everything, even the end of the string; letters before non-letters. */
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ac = i < a.length && !/\d/.test(a[i]!) ? a[i] : undefined;
      const bc = j < b.length && !/\d/.test(b[j]!) ? b[j] : undefined;
      const d = order(ac) - order(bc);
      if (d !== 0) return d;
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    while (i < a.length && /\d/.test(a[i]!) && j < b.length && /\d/.test(b[j]!)) {
      if (!first) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /\d/.test(a[i]!)) return 1;
    if (j < b.length && /\d/.test(b[j]!)) return -1;
    if (first) return first;
  }
  return 0;
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(":");
  const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon >= 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf("-");
  return { epoch, upstream: dash >= 0 ? rest.slice(0, dash) : rest, revision: dash >= 0 ? rest.slice(dash + 1) : "" };
}

/** Compare two Debian versions: negative when `a` is older, 0 when equal, positive when newer. */
export function compareDebVersions(a: string, b: string): number {
  const x = splitVersion(a);
  const y = splitVersion(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision);
}
