/**
 * @module daemon/images/source
 * Where an image comes from: a registry, an OCI layout directory or a docker
 * archive. Each source resolves to the same {@link ResolvedImage} (manifest,
 * config, layer descriptors, all verified and cached) and fetches layers into
 * the blob cache.
 */
import type { BlobCache } from "./blob-cache.ts";
import { sha256Digest, verifyBytes } from "./digest.ts";
import { RegistryError } from "./errors.ts";
import { formatSize } from "./limits.ts";
import { type Descriptor, hostPlatform, ImageConfig, type ImageManifest, isLayerMediaType, type Platform, platformLabel } from "./manifest.ts";

/** A fully resolved single-platform image. */
export interface ResolvedImage {
  /** Digest of the platform manifest. */
  manifestDigest: string;
  /** Digest of the index the manifest was chosen from, if any. */
  indexDigest?: string;
  manifest: ImageManifest;
  configDigest: string;
  config: ImageConfig;
  platform: Platform;
}

/** An image source. */
export interface ImageSource {
  /** Human description for messages. */
  readonly what: string;
  /** Resolve to one manifest for the host platform; caches manifest and config blobs. */
  resolve(cache: BlobCache): Promise<ResolvedImage>;
  /** Put a layer blob into the cache (verified); returns its path. */
  fetchLayer(desc: Descriptor, cache: BlobCache, onBytes: (n: number) => void): Promise<string>;
  /** Release temporary files. */
  close(): Promise<void>;
}

/** Parse and check a config blob; reject images for another platform. */
export function checkConfig(bytes: Uint8Array, digest: string, what: string): { config: ImageConfig; platform: Platform } {
  verifyBytes(bytes, digest, `config of ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new RegistryError(`config ${digest} of ${what} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = ImageConfig.safeParse(json);
  if (!parsed.success) throw new RegistryError(`config ${digest} of ${what} is malformed: ${parsed.error.issues[0]?.message}`);
  const host = hostPlatform();
  const platform: Platform = { os: parsed.data.os ?? "linux", architecture: parsed.data.architecture ?? host.architecture, ...(parsed.data.variant ? { variant: parsed.data.variant } : {}) };
  if (platform.os !== host.os || platform.architecture !== host.architecture) {
    throw new RegistryError(`${what} is built for ${platformLabel(platform)}, this host is ${platformLabel(host)}`, "use an image (or index) that includes this host's platform");
  }
  return { config: parsed.data, platform };
}

/** Refuse a config the manifest declares larger than `max`, before fetching it (the cache holds blobs to their declared size). */
export function checkConfigSize(manifest: ImageManifest, what: string, max: number): void {
  if (manifest.config.size > max) {
    throw new RegistryError(`config ${manifest.config.digest} of ${what} is ${formatSize(manifest.config.size)}, larger than ${formatSize(max)}`, "real image configs are a few KiB; the image is refused");
  }
}

/** Refuse an image whose layers add up to more than `max` compressed bytes, naming the layer that crosses it. */
export function checkCompressedSize(manifest: ImageManifest, what: string, max: number): void {
  let total = 0;
  for (const l of manifest.layers) {
    total += l.size;
    if (total > max) {
      throw new RegistryError(`layer ${l.digest} of ${what} takes the image's compressed size to ${formatSize(total)}, over the ${formatSize(max)} limit`, "nothing was downloaded; for an image you trust, raise AEGIS_IMAGE_MAX_COMPRESSED on aegisd");
    }
  }
}

/** Reject manifests whose layers we cannot unpack. */
export function checkLayers(manifest: ImageManifest, what: string): void {
  for (const l of manifest.layers) {
    if (!isLayerMediaType(l.mediaType)) throw new RegistryError(`layer ${l.digest} of ${what} has unsupported media type ${l.mediaType}`, "only tar, tar+gzip and tar+zstd layers are supported");
  }
}

/** Store a JSON document we synthesised (docker-archive) and return its descriptor. */
export async function storeDocument(cache: BlobCache, mediaType: string, doc: unknown, what: string): Promise<Descriptor> {
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  const digest = sha256Digest(bytes);
  await cache.writeBytes(digest, bytes, what);
  return { mediaType, digest, size: bytes.byteLength };
}
