/**
 * @module daemon/images/unpack-tree
 * The ownership/mode record of an unpacked tree. The tree on disk is written
 * by whoever runs the daemon (not necessarily root) and keeps owner-writable
 * permissions so unpacking and `mkfs.ext4 -d` can read it; the true uid, gid,
 * mode and special-file type of every path live in this map and are applied
 * to the ext4 image afterwards (see rootfs-fixup.ts).
 */
import { lstatSync } from "node:fs";
import { join } from "node:path";

/** Kind of a recorded path. Devices and FIFOs exist on disk only as empty placeholder files. */
export type EntryKind = "file" | "dir" | "symlink" | "char" | "block" | "fifo";

/** What the image says about one path. */
export interface PathMeta {
  kind: EntryKind;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  devmajor?: number;
  devminor?: number;
}

/** Result of unpacking an image into a tree. */
export interface UnpackedTree {
  root: string;
  /** Path relative to the root ("" is the root itself) to metadata, for paths that exist. */
  meta: Map<string, PathMeta>;
  /** Device nodes and FIFOs that were recorded instead of created. */
  specials: string[];
  entries: number;
  bytes: number;
}

/** True when the path exists in the tree (without following a final symlink). */
export function existsInTree(root: string, key: string): boolean {
  try {
    lstatSync(join(root, key));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw err;
  }
}

/**
 * Drop records of paths that a later layer removed. Removal is lazy during
 * unpacking (a whiteout of a big directory would otherwise scan the map);
 * every (re)creation overwrites its record, so whatever still exists is current.
 */
export function pruneMeta(root: string, meta: Map<string, PathMeta>): void {
  for (const key of [...meta.keys()]) if (key !== "" && !existsInTree(root, key)) meta.delete(key);
}
