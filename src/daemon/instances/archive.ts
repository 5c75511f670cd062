/**
 * @module daemon/instances/archive
 * Tar archives of paths inside an instance, as `docker cp` uses them:
 * - out: `GET .../archive?path=/a/b` is a tar whose entries are named from
 *   `b` (the path's last component) down; directories, regular files and
 *   symlinks with their modes and mtimes (other file types are skipped);
 * - in: `PUT .../archive?path=DIR` extracts a tar into the existing guest
 *   directory DIR, keeping modes and mtimes; entries that would land outside
 *   DIR (`..`, absolute names) and hard links, devices and FIFOs are refused.
 * Headers are encoded and decoded with the `tar` package (PAX records for
 * long names); contents move in FS_CHUNK_BYTES chunks over the guest's
 * `fs.*` requests. An incoming archive is spooled to a host temp file first
 * (at most MAX_ARCHIVE_BYTES) so entries are applied one by one, in order.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { Header, Pax } from "tar";
import { InvalidRequest } from "../../api/errors.ts";
import { FS_CHUNK_BYTES, type FileStat } from "../../api/schema/files.ts";
import type { ControlChannel } from "../../vmm/control-channel.ts";

const BLOCK = 512;

/** Largest archive `PUT .../archive` accepts (spooled on the host). */
export const MAX_ARCHIVE_BYTES = 8 * 1024 ** 3;

function header(data: ConstructorParameters<typeof Header>[0] & object): Buffer {
  const h = new Header(data);
  const block = Buffer.alloc(BLOCK);
  const needPax = h.encode(block, 0);
  return needPax ? Buffer.concat([new Pax(data as object).encode(), block]) : block;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/**
 * Stream `path` from the guest behind `ch` as a tar. The channel is taken
 * per call (`withChannel`) so the instance is woken and held for each step.
 */
export function archiveStream(withChannel: <T>(fn: (ch: ControlChannel) => Promise<T>) => Promise<T>, root: FileStat): ReadableStream<Uint8Array> {
  const base = posix.dirname(root.path);
  const pending: FileStat[] = [root];
  let file: { st: FileStat; offset: number } | null = null;
  let finished = false;
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      if (file) {
        const { st } = file;
        const chunk = await withChannel((ch) => ch.call("fs.read", { path: st.path, offset: file!.offset, length: FS_CHUNK_BYTES }));
        let bytes = Buffer.from(chunk.data, "base64");
        // A file that grew since its header was written is cut at the size announced; one that shrank is padded with zeros.
        if (file.offset + bytes.length > st.size) bytes = bytes.subarray(0, st.size - file.offset);
        file.offset += bytes.length;
        const short = chunk.eof && file.offset < st.size;
        if (short) {
          bytes = Buffer.concat([bytes, Buffer.alloc(st.size - file.offset)]);
          file.offset = st.size;
        }
        controller.enqueue(file.offset >= st.size ? Buffer.concat([bytes, padding(st.size)]) : bytes);
        if (file.offset >= st.size) file = null;
        return;
      }
      const st = pending.shift();
      if (!st) {
        if (!finished) {
          finished = true;
          controller.enqueue(Buffer.alloc(BLOCK * 2));
        }
        controller.close();
        return;
      }
      const name = posix.relative(base, st.path) || posix.basename(st.path);
      const common = { mode: st.mode, uid: st.uid, gid: st.gid, mtime: new Date(st.mtime_ms) };
      if (st.type === "dir") {
        const listing = await withChannel((ch) => ch.call("fs.list", { path: st.path }));
        pending.unshift(...listing.entries);
        controller.enqueue(header({ ...common, path: `${name}/`, type: "Directory", size: 0 }));
      } else if (st.type === "symlink") {
        controller.enqueue(header({ ...common, path: name, type: "SymbolicLink", size: 0, linkpath: st.link_target ?? "" }));
      } else if (st.type === "file") {
        controller.enqueue(header({ ...common, path: name, type: "File", size: st.size }));
        if (st.size > 0) file = { st, offset: 0 };
        else controller.enqueue(padding(0));
      }
    },
  });
}

/** Spool a request body to a temp file, refusing more than `max` bytes. */
export async function spool(body: AsyncIterable<Uint8Array>, max = MAX_ARCHIVE_BYTES): Promise<{ path: string; size: number; dispose: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "aegis-cp-"));
  const path = join(dir, "in.tar");
  const fd = openSync(path, "w", 0o600);
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > max) throw new InvalidRequest(`the archive is larger than ${max} bytes`, "copy it in parts");
      writeSync(fd, chunk);
    }
  } catch (err) {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  closeSync(fd);
  return { path, size, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One entry of an archive file. */
interface Entry {
  path: string;
  type: string;
  mode: number;
  mtime: Date | undefined;
  size: number;
  linkpath: string | undefined;
  /** Offset of the entry's data in the file. */
  offset: number;
}

/** The entries of a tar file (PAX and GNU long names applied). */
export function* tarEntries(file: string): Generator<Entry> {
  const fd = openSync(file, "r");
  try {
    let pos = 0;
    let ex: Record<string, unknown> | undefined;
    let global: Record<string, unknown> | undefined;
    let longPath: string | undefined;
    let longLink: string | undefined;
    const block = Buffer.alloc(BLOCK);
    const readAt = (n: number, at: number) => {
      const buf = Buffer.alloc(n);
      const got = readSync(fd, buf, 0, n, at);
      if (got < n) throw new InvalidRequest("the archive is truncated", "send a complete tar stream");
      return buf;
    };
    for (;;) {
      if (readSync(fd, block, 0, BLOCK, pos) < BLOCK) return;
      if (block.every((b) => b === 0)) return;
      const h = new Header(block, 0, ex as never, global as never);
      if (!h.cksumValid) throw new InvalidRequest(`the archive has a bad header at byte ${pos}`, "send a tar stream (as tar -c writes it)");
      const size = h.size ?? 0;
      const dataAt = pos + BLOCK;
      pos = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      const type = h.type;
      if (type === "ExtendedHeader" || type === "GlobalExtendedHeader") {
        const pax = Pax.parse(readAt(size, dataAt).toString("utf8"), type === "ExtendedHeader" ? (ex as never) : (global as never), type === "GlobalExtendedHeader");
        if (type === "ExtendedHeader") ex = { ...pax };
        else global = { ...pax };
        continue;
      }
      if (type === "NextFileHasLongPath" || type === "OldGnuLongPath") {
        longPath = readAt(size, dataAt).toString("utf8").replace(/\0.*$/s, "");
        continue;
      }
      if (type === "NextFileHasLongLinkpath") {
        longLink = readAt(size, dataAt).toString("utf8").replace(/\0.*$/s, "");
        continue;
      }
      yield { path: longPath ?? h.path ?? "", type, mode: h.mode ?? 0o644, mtime: h.mtime, size, linkpath: longLink ?? (h.linkpath || undefined), offset: dataAt };
      ex = undefined;
      longPath = undefined;
      longLink = undefined;
    }
  } finally {
    closeSync(fd);
  }
}

/** Where an entry lands under `dest`, or an error when its name would leave it. */
export function entryTarget(dest: string, name: string): string | null {
  const rel = posix.normalize(name.replace(/^\.\//, "")).replace(/\/+$/, "");
  if (rel === "." || rel === "") return null;
  if (posix.isAbsolute(name) || rel === ".." || rel.startsWith("../")) throw new InvalidRequest(`the archive entry "${name}" would land outside ${dest}`, "archive paths must be relative and stay inside the destination");
  return posix.join(dest, rel);
}

/** Extract the spooled tar `file` into the guest directory `dest`. Returns the number of entries written. */
export async function extractInto(withChannel: <T>(fn: (ch: ControlChannel) => Promise<T>) => Promise<T>, dest: string, file: string): Promise<number> {
  const dirs: { path: string; mode: number; mtime_ms?: number }[] = [];
  let count = 0;
  const fd = openSync(file, "r");
  try {
    for (const e of tarEntries(file)) {
      const target = entryTarget(dest, e.path);
      if (target === null) continue;
      const mtime_ms = e.mtime?.getTime();
      if (e.type === "Directory") {
        await withChannel((ch) => ch.call("fs.mkdir", { path: target, mode: e.mode & 0o7777 }));
        dirs.push({ path: target, mode: e.mode & 0o7777, mtime_ms });
      } else if (e.type === "File" || e.type === "OldFile" || e.type === "ContiguousFile") {
        let offset = 0;
        do {
          const n = Math.min(FS_CHUNK_BYTES, e.size - offset);
          const buf = Buffer.alloc(n);
          readSync(fd, buf, 0, n, e.offset + offset);
          await withChannel((ch) => ch.call("fs.write", { path: target, offset, data: buf.toString("base64"), mode: e.mode & 0o7777 }));
          offset += n;
        } while (offset < e.size);
        await withChannel((ch) => ch.call("fs.setattr", { path: target, mode: e.mode & 0o7777, mtime_ms }));
      } else if (e.type === "SymbolicLink") {
        await withChannel(async (ch) => {
          await ch.call("fs.remove", { path: target }).catch(() => undefined);
          await ch.call("fs.symlink", { path: target, target: e.linkpath ?? "" });
          if (mtime_ms !== undefined) await ch.call("fs.setattr", { path: target, mtime_ms });
        });
      } else {
        throw new InvalidRequest(`the archive entry "${e.path}" is a ${e.type}, which aegis cp does not copy`, "copy regular files, directories and symlinks");
      }
      count++;
    }
    // Directory modes and mtimes last (writing their contents changed the mtimes), deepest first.
    for (const d of dirs.reverse()) await withChannel((ch) => ch.call("fs.setattr", d));
  } finally {
    closeSync(fd);
  }
  return count;
}
