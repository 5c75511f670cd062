/**
 * @module vmm/assets/ext4
 * ext4 images from a directory with `mkfs.ext4 -d`, which needs no root and
 * no loop device. Journal-less (`-O ^has_journal`): these images are
 * mounted read-only, and no journal means no replay on mount.
 * File ownership is copied from the source tree, so building as root gives
 * root-owned files (a non-root builder's files keep its uid).
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec.ts";

/** Bytes a tree occupies, rounded up per file to 4 KiB blocks, plus its inode count. */
export function treeSize(dir: string): { bytes: number; inodes: number } {
  let bytes = 0;
  let inodes = 1;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    inodes++;
    if (ent.isDirectory()) {
      const s = treeSize(p);
      bytes += s.bytes + 4096;
      inodes += s.inodes;
    } else {
      bytes += Math.ceil(lstatSync(p).size / 4096) * 4096;
    }
  }
  return { bytes, inodes };
}

/** Create `out` as an ext4 image holding `srcDir`, sized to fit with headroom (`extraMb` more free space). */
export async function mkfsExt4(srcDir: string, out: string, opts: { label: string; extraMb?: number }): Promise<void> {
  const { bytes, inodes } = treeSize(srcDir);
  const kib = Math.ceil((bytes * 1.1 + inodes * 512) / 1024) + 8192 + (opts.extraMb ?? 0) * 1024;
  await run(["mkfs.ext4", "-q", "-F", "-L", opts.label, "-O", "^has_journal", "-E", "root_owner=0:0", "-d", srcDir, out, `${kib}k`]);
}
