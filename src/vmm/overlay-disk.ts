/**
 * @module vmm/overlay-disk
 * The per-instance writable layer: a sparse ext4 file attached as the
 * virtio-blk disk with serial `aegis-overlay`. The guest harness mounts it at
 * /mnt/rw and uses `/mnt/rw/upper` and `/mnt/rw/work` as the overlayfs upper
 * and work dirs over the read-only image, so everything written under / in
 * the guest lands here and survives stop and cold boot.
 *
 * Made with `mkfs.ext4` on a file (no root, no loop device). It keeps a
 * (small) journal because QEMU may be killed at any time, and lazy inode
 * table init so the file starts at ~1 MB on the host; the guest mounts it
 * with `noinit_itable` so no background thread fills it with zeros (which
 * would also change the disk behind a memory snapshot). Creation goes to a
 * private temp name first and is published with link(2), which fails
 * instead of replacing an existing disk: a user's data is never clobbered.
 */
import { existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";

/** Default size of a new overlay disk (sparse: only written blocks use host space). */
export const DEFAULT_OVERLAY_MB = 2048;

/** Filesystem label of overlay disks. */
export const OVERLAY_LABEL = "aegis-overlay";

/** The mkfs.ext4 argv that creates an empty overlay disk of `sizeMb` at `path`. */
export function mkfsOverlayArgv(path: string, sizeMb: number): string[] {
  if (!Number.isInteger(sizeMb) || sizeMb < 64) throw new Error(`overlay disk size ${sizeMb} MB is invalid: it must be a whole number of MB, at least 64`);
  return [
    "mkfs.ext4", "-q", "-F",
    "-L", OVERLAY_LABEL,
    "-m", "0",
    "-J", "size=16",
    "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
    path, `${sizeMb}M`,
  ];
}

/**
 * Make sure an overlay disk exists at `path`; create an empty one of `sizeMb`
 * when it does not. Returns true when it was created now.
 */
export async function ensureOverlayDisk(path: string, sizeMb = DEFAULT_OVERLAY_MB): Promise<boolean> {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.new-${process.pid}-${Date.now()}`;
  try {
    const proc = Bun.spawn(mkfsOverlayArgv(tmp, sizeMb), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) {
      throw new Error(`cannot create overlay disk ${path}: mkfs.ext4 exited with code ${code}: ${(err || out).trim()}\nhint: check free space and that e2fsprogs is installed (apt-get install e2fsprogs)`);
    }
    try {
      linkSync(tmp, path);
    } catch (e) {
      // Another boot of the same instance created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      return false;
    }
    return true;
  } finally {
    rmSync(tmp, { force: true });
  }
}
