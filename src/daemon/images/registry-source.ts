/**
 * @module daemon/images/registry-source
 * {@link ImageSource} for registry references: tag or digest -> (index ->
 * host platform) -> manifest -> config, all cached by digest.
 */
import type { BlobCache } from "./blob-cache.ts";
import { readFileBounded } from "./bounded-read.ts";
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from "./limits.ts";
import { type Descriptor, parseManifest, selectPlatform } from "./manifest.ts";
import type { RegistryReference } from "./reference.ts";
import type { Credentials } from "./registry-auth.ts";
import { type FetchedManifest, RegistryClient } from "./registry-client.ts";
import { checkConfig, checkConfigSize, checkLayers, type ImageSource, type ResolvedImage } from "./source.ts";
import { RegistryError } from "./errors.ts";

/** An image in a distribution v2 registry. */
export class RegistrySource implements ImageSource {
  readonly what: string;
  private readonly client: RegistryClient;

  constructor(
    readonly ref: RegistryReference,
    credentials?: Credentials,
    private readonly limits: Pick<ImageLimits, "maxManifestBytes" | "maxConfigBytes"> = DEFAULT_IMAGE_LIMITS,
  ) {
    this.what = ref.canonical;
    this.client = new RegistryClient(ref, credentials, limits.maxManifestBytes);
  }

  /** A manifest by digest from the cache (verified when it was written), else from the registry. */
  private async manifestByDigest(cache: BlobCache, digest: string): Promise<FetchedManifest> {
    if (cache.has(digest)) return { bytes: cache.read(digest), digest };
    return this.client.manifest(digest);
  }

  async resolve(cache: BlobCache): Promise<ResolvedImage> {
    // A pinned digest can be resolved offline once cached; a tag is always asked for (tags move).
    const top = this.ref.digest ? await this.manifestByDigest(cache, this.ref.digest) : await this.client.manifest(this.ref.tag ?? "latest");
    let doc = parseManifest(top.bytes, this.what, top.contentType);
    let fetched = top;
    let indexDigest: string | undefined;
    if (doc.kind === "index") {
      indexDigest = top.digest;
      await cache.writeBytes(top.digest, top.bytes, `index of ${this.what}`);
      const chosen = selectPlatform(doc.index, this.what);
      fetched = await this.manifestByDigest(cache, chosen.digest);
      doc = parseManifest(fetched.bytes, this.what, fetched.contentType);
      if (doc.kind === "index") throw new RegistryError(`index ${top.digest} of ${this.what} points at another index`, "nested indexes are not supported");
    }
    const manifest = doc.manifest;
    checkLayers(manifest, this.what);
    checkConfigSize(manifest, this.what, this.limits.maxConfigBytes);
    await cache.writeBytes(fetched.digest, fetched.bytes, `manifest of ${this.what}`);
    const configPath = await cache.ensure(manifest.config.digest, () => this.client.blob(manifest.config, cache, `config of ${this.what}`));
    const { config, platform } = checkConfig(await readFileBounded(configPath, this.limits.maxConfigBytes, `config of ${this.what}`), manifest.config.digest, this.what);
    return { manifestDigest: fetched.digest, indexDigest, manifest, configDigest: manifest.config.digest, config, platform };
  }

  fetchLayer(desc: Descriptor, cache: BlobCache, onBytes: (n: number) => void): Promise<string> {
    return this.client.blob(desc, cache, `layer ${desc.digest} of ${this.what}`, onBytes);
  }

  async close(): Promise<void> {}
}
