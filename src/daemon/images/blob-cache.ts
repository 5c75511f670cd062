/**
 * @module daemon/images/blob-cache
 * The content-addressed blob cache, `<imagesDir>/blobs/sha256/<hex>`. Every
 * write streams into a private temp file while hashing and is renamed into
 * place only when the sha256 matches, so a partial download or a tampered
 * blob never lands in the cache and readers never see half a file.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { digestHex } from "./digest.ts";
import { DigestMismatch, RegistryError } from "./errors.ts";

/** Options of one streamed write. */
export interface BlobWriteOptions {
  /** What the bytes are, for error messages ("layer sha256:... of x"). */
  what: string;
  /** Declared size; more bytes than this abort the write. */
  size?: number;
  /** Called with the running byte count. */
  onBytes?: (bytes: number) => void;
}

/** Content-addressed store of verified blobs. */
export class BlobCache {
  readonly dir: string;
  readonly tmpDir: string;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(imagesDir: string) {
    this.dir = join(imagesDir, "blobs", "sha256");
    this.tmpDir = join(imagesDir, "tmp");
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
  }

  /** Where the blob with this digest lives (whether or not it exists). */
  path(digest: string): string {
    return join(this.dir, digestHex(digest));
  }

  /** True when the blob is cached. */
  has(digest: string): boolean {
    try {
      return statSync(this.path(digest)).isFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  /** The bytes of a cached blob (small documents: manifests, configs). */
  read(digest: string): Uint8Array {
    return readFileSync(this.path(digest));
  }

  /** A fresh temp path on the cache's filesystem (for atomic renames). */
  tempPath(tag: string): string {
    return join(this.tmpDir, `${tag}-${process.pid}-${randomBytes(6).toString("hex")}`);
  }

  /** Store bytes already in memory after checking their digest. */
  async writeBytes(digest: string, bytes: Uint8Array, what: string): Promise<string> {
    return this.write(digest, [bytes], { what, size: bytes.byteLength });
  }

  /** Stream chunks into the cache, verifying the digest; returns the blob path. */
  async write(digest: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts: BlobWriteOptions): Promise<string> {
    const tmp = this.tempPath("blob");
    const hasher = new Bun.CryptoHasher("sha256");
    const fh = await open(tmp, "wx", 0o644);
    let bytes = 0;
    try {
      try {
        for await (const chunk of chunks) {
          bytes += chunk.byteLength;
          if (opts.size !== undefined && bytes > opts.size) {
            throw new RegistryError(`${opts.what} is larger than its declared size ${opts.size}`, "the registry served more bytes than the manifest declares; the download was aborted");
          }
          hasher.update(chunk);
          await fh.write(chunk);
          opts.onBytes?.(bytes);
        }
      } finally {
        await fh.close();
      }
      const actual = `sha256:${hasher.digest("hex")}`;
      if (actual !== digest) throw new DigestMismatch(opts.what, digest, actual);
      if (opts.size !== undefined && bytes !== opts.size) {
        throw new RegistryError(`${opts.what} has ${bytes} bytes, its descriptor declares ${opts.size}`, "the manifest and the blob disagree; the image is corrupt at the source");
      }
      renameSync(tmp, this.path(digest));
      return this.path(digest);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Run `fetch` for a digest unless it is cached or already being fetched in this process. */
  async ensure(digest: string, fetch: () => Promise<string>): Promise<string> {
    if (this.has(digest)) return this.path(digest);
    const running = this.inflight.get(digest);
    if (running) return running;
    const p = fetch().finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, p);
    return p;
  }

  /** Every cached blob with its size. */
  list(): { digest: string; size: number }[] {
    return readdirSync(this.dir)
      .filter((n) => /^[a-f0-9]{64}$/.test(n))
      .map((n) => ({ digest: `sha256:${n}`, size: statSync(join(this.dir, n)).size }));
  }

  /** Delete a blob; returns the bytes freed (0 when absent). */
  remove(digest: string): number {
    const p = this.path(digest);
    let size: number;
    try {
      size = statSync(p).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
    rmSync(p);
    return size;
  }
}
