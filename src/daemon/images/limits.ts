/**
 * @module daemon/images/limits
 * Every bound the image pipeline puts on what a registry (or an archive) may
 * make the host read, download and write, per image.
 *
 * Defaults and why:
 * - manifest and index documents: 4 MiB, the distribution spec's suggested
 *   ceiling (real ones are a few KiB; Docker Hub refuses larger pushes);
 * - image config: 8 MiB (real configs are 2-50 KiB; ones with a long build
 *   history stay under 1 MiB; it is parsed as JSON in memory, so it is bounded
 *   like a manifest, with room to spare);
 * - registry error and token bodies: 64 KiB / 1 MiB (only the start of an error is shown);
 * - compressed layers, summed over the image: 8 GiB (the largest common images,
 *   CUDA and PyTorch, are 4-6 GiB compressed), checked against the manifest
 *   before any layer is downloaded; every blob is also held to its declared size;
 * - unpacked file content, summed over the image: 16 GiB (those same images
 *   unpack to 10-14 GiB), checked on the running total before each file is
 *   written, so a tar bomb stops at the limit, not after it;
 * - expansion: unpacked content may exceed 1 GiB only while it stays within
 *   100 times the image's compressed size. Real layers expand 2-10 times; a
 *   zstd bomb (a ~0.5 MB layer declaring 16 GiB of zeros) expands millions of
 *   times and is stopped at 1 GiB instead of filling the host's disk;
 * - entries: 1,000,000 across the image.
 *
 * aegisd reads overrides from its environment: `AEGIS_IMAGE_MAX_COMPRESSED`,
 * `AEGIS_IMAGE_MAX_UNPACKED` (sizes such as `8G`, `512M`, `1073741824`) and
 * `AEGIS_IMAGE_MAX_EXPANSION` (a ratio; `0` turns the expansion check off).
 * A malformed value stops aegisd with a message naming the variable.
 */

/** Limits applied to one image pull. */
export interface ImageLimits {
  /** Most bytes of one manifest or index document. */
  maxManifestBytes: number;
  /** Most bytes of the image config. */
  maxConfigBytes: number;
  /** Most bytes of all layer blobs of the image, as the registry sends them. */
  maxCompressedBytes: number;
  /** Most bytes of file content across all layers once unpacked. */
  maxUnpackedBytes: number;
  /** Unpacked content beyond {@link expansionFloorBytes} may be at most this many times the compressed size (0: unchecked). */
  maxExpansion: number;
  /** Unpacked bytes every image may use whatever its compression ratio. */
  expansionFloorBytes: number;
  /** Most tar entries across all layers. */
  maxEntries: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Default {@link ImageLimits}: sized for the largest common real images (see the module doc). */
export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxManifestBytes: 4 * MiB,
  maxConfigBytes: 8 * MiB,
  maxCompressedBytes: 8 * GiB,
  maxUnpackedBytes: 16 * GiB,
  maxExpansion: 100,
  expansionFloorBytes: 1 * GiB,
  maxEntries: 1_000_000,
};

/** Most bytes of a registry error body read for a message. */
export const MAX_ERROR_BODY_BYTES = 64 * KiB;
/** Most bytes of a token server's answer (a JSON object holding a JWT). */
export const MAX_TOKEN_BODY_BYTES = 1 * MiB;

const UNITS: Record<string, number> = { "": 1, k: KiB, kb: KiB, kib: KiB, m: MiB, mb: MiB, mib: MiB, g: GiB, gb: GiB, gib: GiB, t: 1024 * GiB, tb: 1024 * GiB, tib: 1024 * GiB };

/** Parse `8G`, `512MiB`, `1048576` (binary units) into bytes; throws naming `name` when malformed. */
export function parseSize(name: string, raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`${name}=${raw} is not a size (examples: 8G, 512M, 1073741824)`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new Error(`${name}=${raw} must be larger than 0`);
  return bytes;
}

/** A byte count for messages: `4 MiB`, `16 GiB`, `1.5 GiB`, `300 bytes`. */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [["TiB", 1024 * GiB], ["GiB", GiB], ["MiB", MiB], ["KiB", KiB]] as const) {
    if (bytes >= n) return `${Number((bytes / n).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** The limits aegisd uses: the defaults with `AEGIS_IMAGE_MAX_*` overrides. */
export function imageLimitsFromEnv(env: Record<string, string | undefined> = process.env): ImageLimits {
  const limits = { ...DEFAULT_IMAGE_LIMITS };
  const size = (name: string) => (env[name] === undefined || env[name] === "" ? undefined : parseSize(name, env[name]!));
  limits.maxCompressedBytes = size("AEGIS_IMAGE_MAX_COMPRESSED") ?? limits.maxCompressedBytes;
  limits.maxUnpackedBytes = size("AEGIS_IMAGE_MAX_UNPACKED") ?? limits.maxUnpackedBytes;
  const ratio = env.AEGIS_IMAGE_MAX_EXPANSION;
  if (ratio !== undefined && ratio !== "") {
    if (!/^\d+(\.\d+)?$/.test(ratio)) throw new Error(`AEGIS_IMAGE_MAX_EXPANSION=${ratio} is not a ratio (example: 100; 0 turns the check off)`);
    limits.maxExpansion = Number(ratio);
  }
  return limits;
}
