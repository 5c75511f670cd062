/**
 * @module daemon/images/unpack
 * Apply image layers, in order, to a directory tree. Entries are read with the
 * `tar` package's Parser (gzip and zstd detected by magic bytes) and written
 * synchronously, one entry at a time, so hard links always find their target.
 * OCI whiteouts (`.wh.NAME`) delete from lower layers (a whiteout naming
 * `.`, `..` or nothing is refused: joined, it would delete the directory or
 * the tree's parent); opaque markers
 * (`.wh..wh..opq`) hide a directory's lower content. Refused: absolute paths,
 * `..`, writes through symlinks that leave the root, hard links out of the
 * root, and archives beyond the entry, byte and expansion limits (tar and
 * compression bombs; see limits.ts). The byte limits apply to the running
 * total as each file's header arrives, before its content is written, so a
 * bomb is stopped at the limit with an error naming the layer digest.
 */
import { chmodSync, closeSync, createReadStream, futimesSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync, statSync, symlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { UnpackRefused } from "./errors.ts";
import { DEFAULT_IMAGE_LIMITS, formatSize } from "./limits.ts";
import { compressionOf, sniffCompression } from "./unpack-compression.ts";
import { entryParts, resolveDir } from "./unpack-paths.ts";
import { type EntryKind, type PathMeta, pruneMeta, type UnpackedTree } from "./unpack-tree.ts";

/** Limits against tar and compression bombs, over the whole image. */
export interface UnpackLimits {
  /** Most entries across all layers. */
  maxEntries: number;
  /** Most bytes of file content across all layers. */
  maxBytes: number;
  /** Content beyond `expansionFloorBytes` may be at most this many times the layers' compressed size (0: unchecked). */
  maxExpansion: number;
  /** Content every image may unpack whatever its compression ratio. */
  expansionFloorBytes: number;
}

/** Default {@link UnpackLimits} (see limits.ts for the reasoning). */
export const DEFAULT_LIMITS: UnpackLimits = {
  maxEntries: DEFAULT_IMAGE_LIMITS.maxEntries,
  maxBytes: DEFAULT_IMAGE_LIMITS.maxUnpackedBytes,
  maxExpansion: DEFAULT_IMAGE_LIMITS.maxExpansion,
  expansionFloorBytes: DEFAULT_IMAGE_LIMITS.expansionFloorBytes,
};

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";
const SPECIAL: Record<string, EntryKind> = { CharacterDevice: "char", BlockDevice: "block", FIFO: "fifo" };

/** Unpack state shared by the layers of one image. */
class TreeWriter {
  readonly meta = new Map<string, PathMeta>();
  entries = 0;
  bytes = 0;
  /** Reports a failure raised while file data streams (set per layer). */
  fail: (err: unknown) => void = (err) => {
    throw err;
  };
  /** The descriptor of the file being written, closed on failure. */
  openFd: number | undefined;
  private layer = "";
  private written = new Set<string>();
  private opaque: string[] = [];

  constructor(
    readonly root: string,
    private readonly limits: UnpackLimits,
    /** Bytes of all layer blobs as stored (compressed), for the expansion check. */
    private readonly compressed: number,
  ) {
    mkdirSync(root, { recursive: true, mode: 0o755 });
    this.meta.set("", { kind: "dir", mode: 0o755, uid: 0, gid: 0 });
  }

  /** True when the user turned the expansion check off (AEGIS_IMAGE_MAX_EXPANSION=0). */
  get expansionUnchecked(): boolean {
    return this.limits.maxExpansion === 0;
  }

  startLayer(name: string): void {
    this.layer = name;
    this.written = new Set();
    this.opaque = [];
  }

  private implicit = (key: string) => {
    this.meta.set(key, { kind: "dir", mode: 0o755, uid: 0, gid: 0 });
    this.written.add(key);
  };

  private remove(abs: string): void {
    rmSync(abs, { recursive: true, force: true });
  }

  /** Handle one entry; file data is written as it streams. */
  entry(e: ReadEntry): void {
    if (++this.entries > this.limits.maxEntries) {
      throw new UnpackRefused("too-many-entries", `image has more than ${this.limits.maxEntries} entries (layer ${this.layer})`, "this looks like a tar bomb; raise the entry limit only for images you trust");
    }
    const parts = entryParts(e.path, this.layer);
    if (parts.length === 0) {
      if (e.type === "Directory") this.meta.set("", this.metaOf(e, "dir"));
      return void e.resume();
    }
    const name = parts[parts.length - 1]!;
    const dir = resolveDir(this.root, parts.slice(0, -1), e.path, this.layer, this.implicit);
    const dirAbs = join(this.root, ...dir);
    if (name === OPAQUE) {
      this.opaque.push(dir.join("/"));
      return void e.resume();
    }
    if (name.startsWith(WH)) {
      const target = name.slice(WH.length);
      // `.wh.` + "", "." or ".." names the directory itself or its parent, not an entry in it:
      // joined, it would delete the directory (or, at the top, the tree's parent on the host).
      if (target === "" || target === "." || target === "..") {
        throw new UnpackRefused("bad-entry", `layer ${this.layer}: whiteout "${e.path}" names no entry of its directory`, "a whiteout deletes one named entry; the image is refused");
      }
      this.remove(join(dirAbs, target));
      return void e.resume();
    }
    const key = [...dir, name].join("/");
    const abs = join(dirAbs, name);
    this.written.add(key);
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (existing && !(existing.isDirectory() && e.type === "Directory")) this.remove(abs);
    switch (e.type) {
      case "Directory":
        if (!existing?.isDirectory()) mkdirSync(abs);
        chmodSync(abs, ((e.mode ?? 0o755) & 0o7777) | 0o700);
        this.meta.set(key, this.metaOf(e, "dir"));
        return void e.resume();
      case "SymbolicLink":
        symlinkSync(e.linkpath ?? "", abs);
        this.meta.set(key, { ...this.metaOf(e, "symlink"), mode: 0o777 });
        return void e.resume();
      case "Link":
        return this.hardlink(e, abs, key);
      case "File":
      case "OldFile":
      case "ContiguousFile":
        return this.file(e, abs, key);
      default: {
        const kind = SPECIAL[e.type];
        if (!kind) throw new UnpackRefused("bad-entry", `layer ${this.layer}: entry "${e.path}" has unsupported type ${e.type}`);
        // Device nodes cannot be made without privileges: leave a placeholder and record them.
        closeSync(openSync(abs, "wx", 0o600));
        this.meta.set(key, { ...this.metaOf(e, kind), devmajor: e.header.devmaj ?? 0, devminor: e.header.devmin ?? 0 });
        return void e.resume();
      }
    }
  }

  private metaOf(e: ReadEntry, kind: EntryKind): PathMeta {
    return { kind, mode: (e.mode ?? 0o644) & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0 };
  }

  private hardlink(e: ReadEntry, abs: string, key: string): void {
    const tparts = entryParts(e.linkpath ?? "", this.layer, `hard link target of "${e.path}"`);
    if (tparts.length === 0) throw new UnpackRefused("hardlink-escape", `layer ${this.layer}: hard link "${e.path}" has an empty target`);
    const tdir = resolveDir(this.root, tparts.slice(0, -1), e.linkpath ?? "", this.layer, this.implicit);
    const tkey = [...tdir, tparts[tparts.length - 1]!].join("/");
    const target = join(this.root, tkey);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      throw new UnpackRefused("bad-entry", `layer ${this.layer}: hard link "${e.path}" points at "${e.linkpath}", which does not exist`);
    }
    if (st.isDirectory()) throw new UnpackRefused("bad-entry", `layer ${this.layer}: hard link "${e.path}" points at directory "${e.linkpath}"`);
    linkSync(target, abs);
    const tm = this.meta.get(tkey);
    this.meta.set(key, tm ?? this.metaOf(e, "file"));
    e.resume();
  }

  private file(e: ReadEntry, abs: string, key: string): void {
    const size = e.size ?? 0;
    const total = this.bytes + size;
    if (total > this.limits.maxBytes) {
      throw new UnpackRefused(
        "too-large",
        `layer ${this.layer} takes the image's unpacked content past the ${formatSize(this.limits.maxBytes)} limit at "${e.path}" (${formatSize(total)})`,
        "this looks like a tar bomb; for an image you trust, raise AEGIS_IMAGE_MAX_UNPACKED on aegisd",
      );
    }
    const { maxExpansion, expansionFloorBytes } = this.limits;
    if (maxExpansion > 0 && total > expansionFloorBytes && total > maxExpansion * this.compressed) {
      throw new UnpackRefused(
        "too-large",
        `layer ${this.layer} expands the image to ${formatSize(total)} at "${e.path}", more than ${maxExpansion} times its ${formatSize(this.compressed)} of compressed layers`,
        "this looks like a compression bomb; for an image you trust, raise AEGIS_IMAGE_MAX_EXPANSION on aegisd (0 turns the check off)",
      );
    }
    this.bytes += size;
    const mode = (e.mode ?? 0o644) & 0o7777;
    const fd = openSync(abs, "wx", 0o600);
    this.openFd = fd;
    chmodSync(abs, mode | 0o600);
    this.meta.set(key, this.metaOf(e, "file"));
    e.on("data", (chunk: Buffer) => {
      try {
        if (this.openFd === fd) writeSync(fd, chunk);
      } catch (err) {
        this.fail(new Error(`writing "${e.path}" of layer ${this.layer} to ${abs} failed: ${(err as Error).message}`, { cause: err }));
      }
    });
    e.on("end", () => {
      if (this.openFd !== fd) return;
      this.openFd = undefined;
      try {
        const mtime = e.mtime ?? new Date(0);
        futimesSync(fd, mtime, mtime);
      } finally {
        closeSync(fd);
      }
    });
  }

  /** Remove lower-layer content from opaque directories (order-independent within the layer). */
  finishLayer(): void {
    if (this.opaque.length === 0) return;
    // Directories on the way to anything this layer wrote survive; the rest of the lower content goes.
    const ancestors = new Set<string>();
    for (const key of this.written) {
      for (let i = key.indexOf("/"); i >= 0; i = key.indexOf("/", i + 1)) ancestors.add(key.slice(0, i));
    }
    for (const dir of this.opaque) this.prune(dir, ancestors);
  }

  private prune(dir: string, ancestors: Set<string>): void {
    for (const name of readdirSync(join(this.root, dir))) {
      const key = dir ? `${dir}/${name}` : name;
      const written = this.written.has(key);
      if ((written || ancestors.has(key)) && lstatSync(join(this.root, key)).isDirectory()) this.prune(key, ancestors);
      else if (!written) this.remove(join(this.root, key));
    }
  }
}

/**
 * Apply one layer blob to the tree. The tar Parser detects gzip and zstd by
 * magic bytes; a blob whose media type promises compression but whose bytes
 * are not compressed is refused with a message saying so.
 */
async function applyLayer(w: TreeWriter, blob: string, layer: string, mediaType?: string): Promise<void> {
  const expected = mediaType ? compressionOf(mediaType) : "none";
  if (expected !== "none" && (await sniffCompression(blob)) === "none") {
    throw new UnpackRefused("bad-archive", `layer ${layer} is labelled ${mediaType} but its bytes are not ${expected}-compressed`, "the image was pushed with a wrong layer media type");
  }
  w.startLayer(layer);
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    const input = createReadStream(blob);
    // tar's own guard (decompressed/compressed bytes of this stream above 1000) stays on as a
    // second line behind the image-wide expansion check; turning that check off turns both off.
    const parser = new Parser({ strict: true, ...(w.expansionUnchecked ? { maxDecompressionRatio: Number.POSITIVE_INFINITY } : {}) });
    w.fail = (err) => fail(err);
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      input.destroy();
      if (w.openFd !== undefined) closeSync(w.openFd);
      w.openFd = undefined;
      const e = err as Error & { tarCode?: string };
      if (/max decompression ratio exceeded/.test(e.message)) {
        return reject(new UnpackRefused("too-large", `layer ${layer} decompresses to more than 1000 times its size (${e.message})`, "this looks like a compression bomb; for an image you trust, set AEGIS_IMAGE_MAX_EXPANSION=0 on aegisd"));
      }
      reject(e.tarCode ? new UnpackRefused("bad-archive", `layer ${layer} is not a valid (optionally gzip/zstd-compressed) tar: ${e.message}`) : e);
    };
    parser.on("entry", (e: ReadEntry) => {
      if (failed) return void e.resume();
      try {
        w.entry(e);
      } catch (err) {
        e.resume();
        fail(err);
      }
    });
    parser.on("error", fail);
    parser.on("end", () => {
      if (failed) return;
      try {
        w.finishLayer();
        resolve();
      } catch (err) {
        fail(err);
      }
    });
    input.on("error", fail);
    input.pipe(parser);
  });
}

/** One layer to apply: its blob path and a name for messages (its digest). */
export interface LayerInput {
  path: string;
  digest: string;
  /** The descriptor's media type, checked against the blob's magic bytes. */
  mediaType?: string;
}

/** Unpack layers in order into `root` (created if missing) and return the ownership record. */
export async function unpackLayers(root: string, layers: LayerInput[], opts: { limits?: Partial<UnpackLimits>; onLayer?: (digest: string, index: number) => void } = {}): Promise<UnpackedTree> {
  const compressed = layers.reduce((sum, l) => sum + statSync(l.path).size, 0);
  const w = new TreeWriter(root, { ...DEFAULT_LIMITS, ...opts.limits }, compressed);
  for (const [i, l] of layers.entries()) {
    opts.onLayer?.(l.digest, i);
    await applyLayer(w, l.path, l.digest, l.mediaType);
  }
  pruneMeta(root, w.meta);
  const specials = [...w.meta.entries()].filter(([, m]) => m.kind === "char" || m.kind === "block" || m.kind === "fifo").map(([k]) => k);
  return { root, meta: w.meta, specials, entries: w.entries, bytes: w.bytes };
}
