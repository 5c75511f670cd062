/**
 * @module daemon/images/oci-layout
 * {@link ImageSource} for `oci:PATH[:TAG]`: an OCI image layout directory
 * (`oci-layout`, `index.json`, `blobs/sha256/...`) as written by skopeo,
 * buildah or `docker buildx --output type=oci`. The tag matches the
 * `org.opencontainers.image.ref.name` annotation. Blobs are copied into the
 * cache and verified on the way, exactly like registry downloads.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { BlobCache } from "./blob-cache.ts";
import { readFileBounded } from "./bounded-read.ts";
import { digestHex } from "./digest.ts";
import { imageNotFound, RegistryError } from "./errors.ts";
import { DEFAULT_IMAGE_LIMITS, formatSize, type ImageLimits } from "./limits.ts";
import { type Descriptor, ImageIndex, parseManifest, selectPlatform } from "./manifest.ts";
import type { OciLayoutReference } from "./reference.ts";
import { checkConfig, checkConfigSize, checkLayers, type ImageSource, type ResolvedImage } from "./source.ts";

const REF_NAME = "org.opencontainers.image.ref.name";

/** An image in an OCI layout directory. */
export class OciLayoutSource implements ImageSource {
  readonly what: string;

  constructor(
    readonly ref: OciLayoutReference,
    private readonly limits: Pick<ImageLimits, "maxManifestBytes" | "maxConfigBytes"> = DEFAULT_IMAGE_LIMITS,
  ) {
    this.what = ref.canonical;
  }

  private blobPath(digest: string): string {
    return join(this.ref.path, "blobs", "sha256", digestHex(digest));
  }

  /** Copy a manifest or index after checking its declared size (it is parsed in memory). */
  private copyManifest(desc: Descriptor, cache: BlobCache): Promise<string> {
    if (desc.size > this.limits.maxManifestBytes) {
      throw new RegistryError(`manifest ${desc.digest} of ${this.what} is ${formatSize(desc.size)}, larger than ${formatSize(this.limits.maxManifestBytes)}`, "no real manifest is that large; the image is refused");
    }
    return this.copy(desc, cache, `manifest of ${this.what}`);
  }

  private async copy(desc: Descriptor, cache: BlobCache, what: string, onBytes?: (n: number) => void): Promise<string> {
    const p = this.blobPath(desc.digest);
    if (!existsSync(p)) throw imageNotFound(`${what}: blob ${p} is missing`, "the OCI layout is incomplete; copy it again");
    return cache.write(desc.digest, Bun.file(p).stream(), { what, size: desc.size, onBytes });
  }

  private pick(index: ImageIndex): Descriptor {
    const tag = this.ref.tag;
    const names = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((n): n is string => !!n);
    if (tag) {
      const hit = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
      if (!hit) throw imageNotFound(`tag "${tag}" not found in OCI layout ${this.ref.path}`, `tags present: ${names.join(", ") || "none"}`);
      return hit;
    }
    if (index.manifests.length === 1) return index.manifests[0]!;
    const latest = index.manifests.find((m) => m.annotations?.[REF_NAME] === "latest");
    if (latest) return latest;
    throw imageNotFound(`OCI layout ${this.ref.path} holds ${index.manifests.length} images and no tag was given`, `write oci:${this.ref.path}:TAG with one of: ${names.join(", ") || "(untagged)"}`);
  }

  async resolve(cache: BlobCache): Promise<ResolvedImage> {
    const indexFile = join(this.ref.path, "index.json");
    if (!existsSync(join(this.ref.path, "oci-layout")) || !existsSync(indexFile)) {
      throw imageNotFound(`${this.ref.path} is not an OCI image layout (no oci-layout or index.json)`, "create one with: skopeo copy docker://IMAGE oci:DIR:TAG");
    }
    const top = ImageIndex.safeParse(JSON.parse(new TextDecoder().decode(await readFileBounded(indexFile, this.limits.maxManifestBytes, indexFile))));
    if (!top.success) throw new RegistryError(`${indexFile} is not a valid OCI index: ${top.error.issues[0]?.message}`);
    let desc = this.pick(top.data);
    let indexDigest: string | undefined;
    await this.copyManifest(desc, cache);
    let doc = parseManifest(cache.read(desc.digest), this.what, desc.mediaType);
    if (doc.kind === "index") {
      indexDigest = desc.digest;
      desc = selectPlatform(doc.index, this.what);
      await this.copyManifest(desc, cache);
      doc = parseManifest(cache.read(desc.digest), this.what, desc.mediaType);
      if (doc.kind === "index") throw new RegistryError(`nested index in ${this.what}`, "nested indexes are not supported");
    }
    const manifest = doc.manifest;
    checkLayers(manifest, this.what);
    checkConfigSize(manifest, this.what, this.limits.maxConfigBytes);
    await this.copy(manifest.config, cache, `config of ${this.what}`);
    const { config, platform } = checkConfig(cache.read(manifest.config.digest), manifest.config.digest, this.what);
    return { manifestDigest: desc.digest, indexDigest, manifest, configDigest: manifest.config.digest, config, platform };
  }

  fetchLayer(desc: Descriptor, cache: BlobCache, onBytes: (n: number) => void): Promise<string> {
    return this.copy(desc, cache, `layer ${desc.digest} of ${this.what}`, onBytes);
  }

  async close(): Promise<void> {}
}
