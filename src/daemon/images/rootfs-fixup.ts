/**
 * @module daemon/images/rootfs-fixup
 * Ownership without root. `mkfs.ext4 -d` copies uid, gid and mode from the
 * tree it reads, but the tree was written by the daemon's own user with
 * owner-writable modes and no device nodes. This module compares each path's
 * recorded metadata ({@link PathMeta}) with what is on disk and emits a
 * `debugfs -w` script of `set_inode_field` (uid, gid, mode) and `mknod`
 * commands, so the ext4 image ends up exactly as the layers describe,
 * whether or not the daemon runs as root. As root the script is short (only
 * non-root-owned paths, forced mode bits and device nodes).
 */
import { lstatSync } from "node:fs";
import { join, posix } from "node:path";
import { BackendError } from "../../api/errors.ts";
import type { EntryKind, PathMeta } from "./unpack-tree.ts";

const TYPE_BITS: Record<EntryKind, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** Quote an argument for debugfs's command parser (a doubled quote is a literal quote). */
function q(path: string): string {
  if (/[\n\r]/.test(path)) throw new BackendError(`cannot fix ownership of image path ${JSON.stringify(path)}: debugfs commands cannot name a path containing a newline`);
  return `"${path.replaceAll('"', '""')}"`;
}

/** The debugfs commands that make the ext4 image match `meta` (tree at `root`). */
export function fixupScript(root: string, meta: Map<string, PathMeta>): string[] {
  const out: string[] = [];
  for (const [key, m] of meta) {
    const path = `/${key}`;
    const full = (TYPE_BITS[m.kind] | m.mode).toString(8);
    if (m.kind === "char" || m.kind === "block" || m.kind === "fifo") {
      const spec = m.kind === "fifo" ? "p" : `${m.kind === "char" ? "c" : "b"} ${m.devmajor ?? 0} ${m.devminor ?? 0}`;
      out.push(`rm ${q(path)}`, `cd ${q(posix.dirname(path))}`, `mknod ${q(posix.basename(path))} ${spec}`, "cd /");
      out.push(`sif ${q(path)} mode 0${full}`, `sif ${q(path)} uid ${m.uid}`, `sif ${q(path)} gid ${m.gid}`);
      continue;
    }
    const st = lstatSync(join(root, key));
    if (st.uid !== m.uid) out.push(`sif ${q(path)} uid ${m.uid}`);
    if (st.gid !== m.gid) out.push(`sif ${q(path)} gid ${m.gid}`);
    if (m.kind !== "symlink" && (st.mode & 0o7777) !== m.mode) out.push(`sif ${q(path)} mode 0${full}`);
  }
  return out;
}

/** Run a debugfs script against an ext4 image; any diagnostic on stderr is a failure. */
export async function runDebugfs(image: string, commands: string[]): Promise<void> {
  if (commands.length === 0) return;
  const proc = Bun.spawn(["debugfs", "-w", "-f", "-", image], { stdin: new Blob([`${commands.join("\n")}\n`]), stdout: "pipe", stderr: "pipe" });
  const [, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const problems = stderr.split("\n").filter((l) => l.trim() !== "" && !/^debugfs \d/.test(l));
  if (code !== 0 || problems.length > 0) {
    throw new BackendError(`debugfs could not fix ownership in ${image} (exit ${code}): ${problems.slice(0, 5).join("; ")}`, "is e2fsprogs (debugfs) installed and at least 1.43?");
  }
}
