/**
 * @module daemon/images/docker-archive
 * {@link ImageSource} for `docker-archive:PATH`, a `docker save` tarball.
 * One streaming pass over the archive hashes every member into a temp file;
 * `manifest.json` then names the config and the layers. Layers are checked
 * against the config's `rootfs.diff_ids` (they are uncompressed tars in
 * docker save output) before they enter the cache, and an OCI manifest is
 * synthesised for them so the rest of the pipeline sees a normal image.
 */
import { closeSync, createReadStream, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { posix } from "node:path";
import { Parser, type ReadEntry } from "tar";
import type { BlobCache } from "./blob-cache.ts";
import { readFileBounded } from "./bounded-read.ts";
import { DigestMismatch, imageNotFound, RegistryError } from "./errors.ts";
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from "./limits.ts";
import { type Descriptor, type ImageManifest, MediaType } from "./manifest.ts";
import type { DockerArchiveReference } from "./reference.ts";
import { checkConfig, type ImageSource, type ResolvedImage, storeDocument } from "./source.ts";
import { sniffCompression } from "./unpack-compression.ts";

interface Member {
  tmp: string;
  digest: string;
  size: number;
}

/** One image entry of docker save's manifest.json. */
interface SaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** An image in a docker save tarball. */
export class DockerArchiveSource implements ImageSource {
  readonly what: string;
  private readonly members = new Map<string, Member>();
  private readonly aliases = new Map<string, string>();

  constructor(
    readonly ref: DockerArchiveReference,
    private readonly limits: Pick<ImageLimits, "maxManifestBytes" | "maxConfigBytes"> = DEFAULT_IMAGE_LIMITS,
    private readonly layerPaths = new Map<string, string>(),
  ) {
    this.what = ref.canonical;
  }

  private async scan(cache: BlobCache): Promise<void> {
    const parser = new Parser({ strict: true });
    let failure: Error | undefined;
    parser.on("entry", (entry: ReadEntry) => {
      const name = posix.normalize(entry.path).replace(/^\.\//, "").replace(/\/$/, "");
      if (entry.type === "SymbolicLink" || entry.type === "Link") {
        const target = entry.type === "Link" ? entry.linkpath! : posix.join(posix.dirname(name), entry.linkpath!);
        this.aliases.set(name, posix.normalize(target).replace(/^\.\//, ""));
      }
      if (entry.type !== "File" && entry.type !== "OldFile") return entry.resume();
      const tmp = cache.tempPath("archive");
      const fd = openSync(tmp, "wx", 0o600);
      const hasher = new Bun.CryptoHasher("sha256");
      let size = 0;
      entry.on("data", (c: Buffer) => {
        hasher.update(c);
        writeSync(fd, c);
        size += c.length;
      });
      entry.on("end", () => {
        closeSync(fd);
        this.members.set(name, { tmp, digest: `sha256:${hasher.digest("hex")}`, size });
      });
    });
    await new Promise<void>((resolve, reject) => {
      parser.on("error", (e: Error) => reject((failure = e)));
      parser.on("end", () => resolve());
      const input = createReadStream(this.ref.path);
      input.on("error", (e: NodeJS.ErrnoException) => reject(e.code === "ENOENT" ? imageNotFound(`docker archive ${this.ref.path} does not exist`, "create one with: docker save IMAGE -o FILE.tar") : e));
      input.pipe(parser);
    });
    if (failure) throw failure;
  }

  private member(name: string): Member {
    let n = posix.normalize(name).replace(/^\.\//, "");
    for (let i = 0; i < 8 && this.aliases.has(n); i++) n = this.aliases.get(n)!;
    const m = this.members.get(n);
    if (!m) throw new RegistryError(`docker archive ${this.ref.path} has no member "${name}" named by its manifest.json`, "the archive is truncated or was not written by docker save");
    return m;
  }

  async resolve(cache: BlobCache): Promise<ResolvedImage> {
    try {
      await this.scan(cache);
    } catch (err) {
      if (err instanceof Error && "tarCode" in err) throw new RegistryError(`docker archive ${this.ref.path} is not a valid tar file: ${err.message}`);
      throw err;
    }
    const mf = this.members.get("manifest.json");
    if (!mf) throw new RegistryError(`docker archive ${this.ref.path} has no manifest.json`, "only archives written by `docker save` (or podman/skopeo docker-archive:) are supported");
    const entries = JSON.parse(new TextDecoder().decode(await readFileBounded(mf.tmp, this.limits.maxManifestBytes, `manifest.json of docker archive ${this.ref.path}`))) as SaveEntry[];
    if (!Array.isArray(entries) || entries.length !== 1) throw new RegistryError(`docker archive ${this.ref.path} holds ${Array.isArray(entries) ? entries.length : 0} images`, "save exactly one image per archive");
    const entry = entries[0]!;
    const cfg = this.member(entry.Config);
    const cfgBytes = await readFileBounded(cfg.tmp, this.limits.maxConfigBytes, `config ${entry.Config} of docker archive ${this.ref.path}`);
    const { config, platform } = checkConfig(cfgBytes, cfg.digest, this.what);
    await cache.writeBytes(cfg.digest, cfgBytes, `config of ${this.what}`);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== entry.Layers.length) throw new RegistryError(`docker archive ${this.ref.path}: manifest.json lists ${entry.Layers.length} layers, the config ${diffIds.length}`);
    const layers: Descriptor[] = [];
    for (const [i, name] of entry.Layers.entries()) {
      const m = this.member(name);
      const compression = await sniffCompression(m.tmp);
      if (compression === "none" && m.digest !== diffIds[i]) throw new DigestMismatch(`layer ${name} of ${this.what}`, diffIds[i]!, m.digest);
      const mediaType = compression === "gzip" ? MediaType.ociLayerGzip : compression === "zstd" ? MediaType.ociLayerZstd : MediaType.ociLayerTar;
      layers.push({ mediaType, digest: m.digest, size: m.size });
      this.layerPaths.set(m.digest, m.tmp);
    }
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: cfg.digest, size: cfg.size }, layers };
    const md = await storeDocument(cache, MediaType.ociManifest, manifest, `manifest of ${this.what}`);
    return { manifestDigest: md.digest, manifest, configDigest: cfg.digest, config, platform };
  }

  async fetchLayer(desc: Descriptor, cache: BlobCache, onBytes: (n: number) => void): Promise<string> {
    const tmp = this.layerPaths.get(desc.digest);
    if (!tmp) throw new RegistryError(`layer ${desc.digest} is not in docker archive ${this.ref.path}`);
    // The digest was computed while reading the archive, so a rename is a verified insert.
    renameSync(tmp, cache.path(desc.digest));
    this.layerPaths.delete(desc.digest);
    onBytes(desc.size);
    return cache.path(desc.digest);
  }

  async close(): Promise<void> {
    for (const m of this.members.values()) rmSync(m.tmp, { force: true });
  }
}
