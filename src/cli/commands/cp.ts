/**
 * @module cli/commands/cp
 * `aegis cp SRC DST`: copy files and directories between the host and an
 * instance, with `NAME:/path` on one side, like `docker cp`:
 * - `aegis cp NAME:/a/b DEST`: into DEST when it is a directory (as
 *   DEST/b), else as DEST itself (its parent must exist);
 * - `aegis cp SRC NAME:/x/y`: into /x/y when it is a directory there, else
 *   as /x/y (its parent must exist);
 * - `-` on the host side is a tar stream on stdin or stdout.
 * Modes and mtimes are kept; owners are not (the guest's files belong to
 * root there, the host's to you). The instance is woken first (a stopped one
 * boots). An argument is an instance path when it starts with `NAME:` and
 * NAME has no `/` (so `./a:b` and `/tmp/a:b` are host paths).
 */
import { defineCommand } from "citty";
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { posix } from "node:path";
import { isAppError } from "../../api/errors.ts";
import type { FileStat } from "../../api/schema/files.ts";
import { UsageError } from "../errors.ts";
import { packHostPath, unpackFromGuest } from "../host-tar.ts";
import { say } from "../log.ts";
import { client } from "./_shared.ts";

/** `NAME:/path` -> its parts, or null for a host path. */
export function instancePath(arg: string): { instance: string; path: string } | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$/.exec(arg);
  if (!m) return null;
  const path = m[2]!;
  if (!path.startsWith("/")) throw new UsageError(`invalid path in "${arg}": the path inside the instance must be absolute, e.g. ${m[1]}:/workspace/file`);
  return { instance: m[1]!, path: posix.normalize(path) };
}

async function statOrNull(instance: string, path: string): Promise<FileStat | null> {
  try {
    return await client().statFile(instance, path);
  } catch (err) {
    if (isAppError(err) && err.code === "not_found") return null;
    throw err;
  }
}

async function copyOut(from: { instance: string; path: string }, dest: string): Promise<void> {
  const api = client();
  if (dest === "-") {
    const tar = await api.getArchive(from.instance, from.path);
    for await (const chunk of tar) if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once("drain", r));
    return;
  }
  const src = await api.statFile(from.instance, from.path);
  const target = resolve(dest);
  if (existsSync(target) && statSync(target).isDirectory()) {
    await unpackFromGuest(await api.getArchive(from.instance, from.path), target);
    return;
  }
  if (src.type === "dir" && existsSync(target)) throw new UsageError(`cannot copy directory ${from.instance}:${from.path} onto the file ${dest}`);
  if (!existsSync(dirname(target))) throw new UsageError(`${dirname(target)} does not exist: create the destination's parent directory first`);
  // Unpack next to the destination, then rename into place: a copy that fails leaves DEST as it was.
  const tmp = mkdtempSync(join(dirname(target), ".aegis-cp-"));
  try {
    await unpackFromGuest(await api.getArchive(from.instance, from.path), tmp);
    renameSync(join(tmp, posix.basename(from.path) || "root"), target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function copyIn(src: string, to: { instance: string; path: string }): Promise<void> {
  const api = client();
  if (src === "-") {
    const r = await api.putArchive(to.instance, to.path, Bun.stdin.stream());
    say(`Extracted ${r.entries} entries into ${to.instance}:${r.path}`);
    return;
  }
  const host = resolve(src);
  if (!existsSync(host)) throw new UsageError(`${src} does not exist on the host`);
  const dest = await statOrNull(to.instance, to.path);
  if (dest?.type === "dir") {
    await api.putArchive(to.instance, to.path, packHostPath(host, basename(host)));
    return;
  }
  if (dest && statSync(host).isDirectory()) throw new UsageError(`cannot copy the directory ${src} onto the file ${to.instance}:${to.path}`);
  const parent = posix.dirname(to.path);
  const p = await statOrNull(to.instance, parent);
  if (p?.type !== "dir") throw new UsageError(`${to.instance}:${parent} is not a directory (create it first: aegis exec ${to.instance} -- mkdir -p ${parent})`);
  await api.putArchive(to.instance, parent, packHostPath(host, posix.basename(to.path)));
}

export default defineCommand({
  meta: { name: "cp", description: "Copy files between the host and an instance (NAME:/path on one side; - for a tar stream)" },
  args: {
    src: { type: "positional", required: true, valueHint: "SRC", description: "NAME:/path, a host path, or - (tar on stdin)" },
    dst: { type: "positional", required: true, valueHint: "DST", description: "NAME:/path, a host path, or - (tar on stdout)" },
  },
  async run({ args }) {
    const from = instancePath(args.src);
    const to = instancePath(args.dst);
    if (from && to) throw new UsageError("copying between two instances is not supported: copy to the host first");
    if (!from && !to) throw new UsageError("one side must be an instance path NAME:/path, e.g. aegis cp ./file my-agent:/workspace/");
    if (from) await copyOut(from, args.dst);
    else await copyIn(args.src, to!);
  },
});
