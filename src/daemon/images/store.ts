/**
 * @module daemon/images/store
 * The image store the daemon calls: pull (resolve, download layers with
 * bounded concurrency into the verified blob cache, build the ext4 rootfs),
 * list, get, remove and garbage-collect. Layout under `imagesDir`:
 * `blobs/sha256/<hex>`, `rootfs/<hex>.ext4` (by config digest), `tmp/`,
 * `index.json`. Every pull is held to the {@link ImageLimits} (limits.ts):
 * documents, compressed layers (checked against the manifest before any
 * download) and unpacked content.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Conflict, InvalidRequest } from "../../api/errors.ts";
import type { ImageRecord, PullProgress } from "../../api/schema/images.ts";
import { BlobCache } from "./blob-cache.ts";
import { DockerArchiveSource } from "./docker-archive.ts";
import { imageNotFound } from "./errors.ts";
import { ImageIndex } from "./image-index.ts";
import { alive } from "./lock.ts";
import { type Descriptor, parseManifest, platformLabel } from "./manifest.ts";
import { OciLayoutSource } from "./oci-layout.ts";
import { mapLimit } from "./pool.ts";
import { isDigest, parseReference } from "./reference.ts";
import type { Credentials } from "./registry-auth.ts";
import { RegistrySource } from "./registry-source.ts";
import { RootfsBuilder, runConfig } from "./rootfs.ts";
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from "./limits.ts";
import { checkCompressedSize, type ImageSource } from "./source.ts";

export type { ImageRecord, PullProgress } from "../../api/schema/images.ts";
export type { Credentials } from "./registry-auth.ts";

/** Options of {@link ImageStore}. */
export interface ImageStoreOptions {
  /** Size limits per image (defaults: {@link DEFAULT_IMAGE_LIMITS}). */
  limits?: Partial<ImageLimits>;
  /** Parallel layer downloads (default 3). */
  concurrency?: number;
  /** Free space in each ext4 beyond its content (default 32 MiB). */
  headroomBytes?: number;
}

/** Options of one pull. */
export interface PullOptions {
  progress?: (e: PullProgress) => void;
  credentials?: Credentials;
}

const PROGRESS_STEP = 1024 * 1024;

/** Pulled images and their caches under one directory (`AEGIS_HOME/images`). */
export class ImageStore {
  readonly blobs: BlobCache;
  readonly rootfs: RootfsBuilder;
  private readonly index: ImageIndex;
  private pulling = 0;
  /** The limits every pull is held to. */
  readonly limits: ImageLimits;

  constructor(
    readonly imagesDir: string,
    private readonly opts: ImageStoreOptions = {},
  ) {
    const l = (this.limits = { ...DEFAULT_IMAGE_LIMITS, ...opts.limits });
    this.blobs = new BlobCache(imagesDir);
    const unpack = { maxEntries: l.maxEntries, maxBytes: l.maxUnpackedBytes, maxExpansion: l.maxExpansion, expansionFloorBytes: l.expansionFloorBytes };
    this.rootfs = new RootfsBuilder(imagesDir, { limits: unpack, headroomBytes: opts.headroomBytes });
    this.index = new ImageIndex(imagesDir);
  }

  private source(ref: string, credentials?: Credentials): ImageSource {
    const r = parseReference(ref);
    if (r.kind === "oci") return new OciLayoutSource(r, this.limits);
    if (r.kind === "docker-archive") return new DockerArchiveSource(r, this.limits);
    return new RegistrySource(r, credentials, this.limits);
  }

  /** Pull an image (registry, `oci:` or `docker-archive:`) and build its rootfs; cached parts are reused. */
  async pull(ref: string, opts: PullOptions = {}): Promise<ImageRecord> {
    const canonical = parseReference(ref).canonical;
    const emit = opts.progress ?? (() => {});
    const source = this.source(ref, opts.credentials);
    this.pulling++;
    try {
      emit({ phase: "resolve" });
      const img = await source.resolve(this.blobs);
      checkCompressedSize(img.manifest, source.what, this.limits.maxCompressedBytes);
      emit({ phase: "resolve", total: img.manifest.layers.length });
      const paths = await mapLimit(img.manifest.layers, this.opts.concurrency ?? 3, (d) => this.fetchLayer(source, d, emit));
      const layers = img.manifest.layers.map((d, i) => ({ path: paths[i]!, digest: d.digest, mediaType: d.mediaType }));
      const rootfs = await this.rootfs.ensure(img.configDigest, layers, (e) => emit(e.phase === "unpack" ? { phase: "unpack", layer: e.layer } : { phase: "rootfs", bytes: e.bytes }));
      const config = runConfig(img.config);
      const prev = this.index.all().find((r) => r.ref === canonical);
      const rec: ImageRecord = {
        ref: canonical,
        digest: img.manifestDigest,
        index_digest: img.indexDigest ?? null,
        config_digest: img.configDigest,
        platform: platformLabel(img.platform),
        size: img.manifest.layers.reduce((a, l) => a + l.size, 0),
        layers: img.manifest.layers.map((l) => ({ digest: l.digest, size: l.size, media_type: l.mediaType })),
        rootfs,
        rootfs_size: statSync(rootfs).size,
        env_path: config.env.find((e) => e.startsWith("PATH="))?.slice(5) ?? null,
        working_dir: config.working_dir,
        config,
        created_at: prev && prev.digest === img.manifestDigest ? prev.created_at : new Date().toISOString(),
      };
      this.index.upsert(rec);
      return rec;
    } finally {
      this.pulling--;
      await source.close();
    }
  }

  private async fetchLayer(source: ImageSource, d: Descriptor, emit: (e: PullProgress) => void): Promise<string> {
    if (this.blobs.has(d.digest)) {
      emit({ phase: "layer", layer: d.digest, bytes: d.size, total: d.size });
      return this.blobs.path(d.digest);
    }
    let last = 0;
    const path = await this.blobs.ensure(d.digest, () =>
      source.fetchLayer(d, this.blobs, (n) => {
        if (n - last >= PROGRESS_STEP) {
          last = n;
          emit({ phase: "layer", layer: d.digest, bytes: n, total: d.size });
        }
      }),
    );
    emit({ phase: "layer", layer: d.digest, bytes: d.size, total: d.size });
    return path;
  }

  /** Every pulled image, newest first. */
  list(): ImageRecord[] {
    return this.index.all().sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  /** An image by reference (as given or normalised) or by manifest/config digest; null if not pulled. */
  get(ref: string): ImageRecord | null {
    const all = this.index.all();
    if (isDigest(ref)) return all.find((r) => r.digest === ref || r.config_digest === ref || r.index_digest === ref) ?? null;
    const canonical = parseReference(ref).canonical;
    return all.find((r) => r.ref === canonical) ?? null;
  }

  /** Forget an image (its blobs and rootfs stay until {@link gc}). Throws NotFound when absent. */
  remove(ref: string): void {
    const rec = this.get(ref);
    if (!rec) throw imageNotFound(`image "${ref}" is not in the local store`, "see the pulled images with: aegis image list");
    this.index.save(this.index.all().filter((r) => r.ref !== rec.ref));
  }

  /**
   * Delete blobs and rootfs files that no pulled image and no digest in
   * `inUse` (manifest, index or config digests of releases and instances)
   * references. Refused while a pull runs in this store.
   */
  gc(inUse: Set<string>): { removedBlobs: number; removedRootfs: number; freedBytes: number } {
    if (this.pulling > 0) throw new Conflict("image garbage collection refused: a pull is in progress", "retry when the pull has finished");
    const keep = new Set<string>();
    const keepRootfs = new Set<string>();
    for (const r of this.index.all()) {
      for (const d of [r.digest, r.index_digest, r.config_digest, ...r.layers.map((l) => l.digest)]) if (d) keep.add(d);
      keepRootfs.add(r.config_digest);
    }
    for (const d of inUse) {
      if (!isDigest(d)) throw new InvalidRequest(`gc: "${d}" is not a sha256 digest`, "pass manifest, index or config digests");
      this.keepReachable(d, keep, keepRootfs);
    }
    let removedBlobs = 0;
    let removedRootfs = 0;
    let freedBytes = 0;
    for (const b of this.blobs.list()) {
      if (keep.has(b.digest)) continue;
      freedBytes += this.blobs.remove(b.digest);
      removedBlobs++;
    }
    this.cleanTemp();
    for (const f of this.rootfs.list()) {
      if (keepRootfs.has(f.configDigest)) continue;
      rmSync(f.path, { force: true });
      freedBytes += f.size;
      removedRootfs++;
    }
    return { removedBlobs, removedRootfs, freedBytes };
  }

  /** Remove temp files and trees left by dead processes (their names carry the writer's pid). */
  private cleanTemp(): void {
    const tmp = this.blobs.tmpDir;
    for (const name of readdirSync(tmp)) {
      const pid = Number(/-(\d+)-[^-]+$/.exec(name)?.[1]);
      if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
      rmSync(join(tmp, name), { recursive: true, force: true });
    }
  }

  private keepReachable(d: string, keep: Set<string>, keepRootfs: Set<string>): void {
    keep.add(d);
    keepRootfs.add(d);
    if (!this.blobs.has(d)) return;
    const bytes = this.blobs.read(d);
    if (bytes[0] !== 0x7b) return;
    let doc: ReturnType<typeof parseManifest>;
    try {
      doc = parseManifest(bytes, d);
    } catch (err) {
      // A config or other JSON blob is not a manifest; anything else is a real error.
      if (err instanceof Error && err.name === "AppError") return;
      throw err;
    }
    if (doc.kind === "index") {
      for (const m of doc.index.manifests) if (!keep.has(m.digest)) this.keepReachable(m.digest, keep, keepRootfs);
      return;
    }
    keep.add(doc.manifest.config.digest);
    keepRootfs.add(doc.manifest.config.digest);
    for (const l of doc.manifest.layers) keep.add(l.digest);
  }
}
