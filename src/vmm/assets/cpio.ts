/**
 * @module vmm/assets/cpio
 * A writer for the `newc` cpio format, which is what the Linux kernel
 * unpacks as an initramfs. Written here (about 60 lines) rather than
 * shelling out to `cpio`: we build the archive from an in-memory list, so no
 * staging tree, no root privileges for device nodes, fixed uid/gid/mtime
 * (byte-for-byte reproducible output for a given input), and no host tool.
 *
 * Layout per entry: a 110-byte ASCII header (`070701` + 13 eight-digit hex
 * fields), the NUL-terminated name padded to a multiple of 4, then the data
 * padded to a multiple of 4. The archive ends with an entry named
 * `TRAILER!!!`.
 */

/** File type bits of `st_mode`. */
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

/** One archive member. Paths are relative (no leading `/`), as the kernel expects. */
export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Uint8Array; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "char"; path: string; major: number; minor: number; mode?: number };

const encoder = new TextEncoder();

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Serialise `entries` (in order) into a newc archive. */
export function writeCpio(entries: CpioEntry[]): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  let ino = 1;
  const add = (path: string, mode: number, data: Uint8Array, rdevMajor = 0, rdevMinor = 0, nlink = 1): void => {
    const name = encoder.encode(`${path.replace(/^\/+/, "")}\0`);
    const fields = [ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdevMajor, rdevMinor, name.length, 0];
    const header = encoder.encode(`070701${fields.map(hex8).join("")}`);
    chunks.push(header, name, new Uint8Array(pad4(header.length + name.length)), data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) {
    switch (e.type) {
      case "dir":
        add(e.path, S_IFDIR | (e.mode ?? 0o755), new Uint8Array(0), 0, 0, 2);
        break;
      case "file":
        add(e.path, S_IFREG | (e.mode ?? 0o644), e.data);
        break;
      case "symlink":
        add(e.path, S_IFLNK | 0o777, encoder.encode(e.target));
        break;
      case "char":
        add(e.path, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(0), e.major, e.minor);
        break;
    }
  }
  ino = 0;
  add("TRAILER!!!", 0, new Uint8Array(0));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
