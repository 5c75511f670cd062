/**
 * The files of template builds (templates.ts), one set per build:
 * `<key>.<build>.snap` (device state), `<key>.<build>.snap.json` (metadata
 * with the stamps of both) and `<key>.<build>.ram` (guest RAM). Clones map
 * the `.ram` file copy-on-write for their whole life, and read the `.snap`
 * stream when they start, so a build's files are never replaced in place
 * and never renamed over: a rebuild (a stamp changed, a file went missing)
 * writes a new build, and an old build is removed only once no process maps
 * its RAM and no start in this process is about to (the caller's leases).
 * Two builds of one key therefore never mix, even when a clone starts while
 * another daemon sharing the directory rebuilds.
 *
 * Build names sort by creation time (a zero-padded base-36 ms clock, then
 * random), so the newest build that verifies is the current one.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/** The files of one new build of `key` in `dir`. */
export function newTemplateBuild(dir: string, key: string): { snap: string; ram: string } {
  const build = `${Date.now().toString(36).padStart(9, "0")}${crypto.getRandomValues(new Uint32Array(1))[0]!.toString(16).padStart(8, "0")}`;
  const snap = join(dir, `${key}.${build}.snap`);
  return { snap, ram: templateMemoryFile(snap) };
}

/** Guest RAM file of a template build (`<key>.<build>.snap` -> `<key>.<build>.ram`). */
export function templateMemoryFile(snap: string): string {
  return snap.replace(/\.snap$/, "") + ".ram";
}

/** The complete builds (metadata written last, so present) of `key`, newest first. */
export function templateBuilds(dir: string, key: string): string[] {
  if (!existsSync(dir)) return [];
  const prefix = `${key}.`;
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".snap.json"))
    .map((f) => join(dir, f.slice(0, -".json".length)))
    .sort()
    .reverse();
}

/** Every file a build of `key` may leave (complete or not), by build snapshot path. */
function buildFiles(dir: string, key: string): Map<string, string[]> {
  const byBuild = new Map<string, string[]>();
  if (!existsSync(dir)) return byBuild;
  const re = new RegExp(`^${key}\\.([0-9a-z]+)\\.(snap|ram)`);
  for (const f of readdirSync(dir)) {
    const m = f.match(re);
    if (!m) continue;
    const snap = join(dir, `${key}.${m[1]}.snap`);
    byBuild.set(snap, [...(byBuild.get(snap) ?? []), join(dir, f)]);
  }
  return byBuild;
}

/** A build with no metadata this long after it started was abandoned (a daemon killed mid-build). */
const ABANDONED_MS = 60 * 60_000;

/** When a build started, from its name (newTemplateBuild); 0 when the name is not one of ours. */
function buildTime(snap: string): number {
  const m = snap.match(/\.([0-9a-z]{9})[0-9a-f]{8}\.snap$/);
  return m ? parseInt(m[1]!, 36) : 0;
}

/** Paths of every file some process on this machine maps (from /proc/<pid>/maps; deleted ones too). */
export function mappedFiles(): Set<string> {
  const mapped = new Set<string>();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let maps: string;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, "utf8");
    } catch {
      continue; // gone, or not ours to read
    }
    for (const line of maps.split("\n")) {
      const i = line.indexOf("/");
      if (i > 0) mapped.add(line.slice(i).replace(/ \(deleted\)$/, ""));
    }
  }
  return mapped;
}

/**
 * Remove the builds of `key` other than `current` whose RAM no process maps
 * and no lease holds (a clone between choosing the build and its QEMU mapping
 * the file). Returns the builds removed.
 */
export function pruneTemplateBuilds(dir: string, key: string, current: string, leased: ReadonlySet<string>): string[] {
  const builds = [...buildFiles(dir, key).entries()].filter(
    // A build without metadata may be in progress in another daemon: left alone until it is clearly abandoned.
    ([snap, files]) => snap !== current && !leased.has(snap) && (files.includes(`${snap}.json`) || Date.now() - buildTime(snap) > ABANDONED_MS),
  );
  if (builds.length === 0) return [];
  const mapped = mappedFiles();
  const removed: string[] = [];
  for (const [snap, files] of builds) {
    if (mapped.has(templateMemoryFile(snap))) continue;
    // Metadata first: a build without it is incomplete and never chosen.
    for (const f of files.sort((a, b) => Number(b.endsWith(".json")) - Number(a.endsWith(".json")))) rmSync(f, { force: true });
    removed.push(snap);
  }
  return removed;
}
