/**
 * @module daemon/images/unpack-compression
 * Layer compression detection. The magic bytes decide (registries have been
 * known to mislabel layers); the media type is only used to name what was
 * expected when the bytes are neither gzip, zstd nor a tar header.
 */
import { open } from "node:fs/promises";

/** Compression of a layer blob. */
export type Compression = "gzip" | "zstd" | "none";

/** Compression implied by a layer media type. */
export function compressionOf(mediaType: string): Compression {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd")) return "zstd";
  return "none";
}

/** Read the first bytes of a file and name its compression by magic number. */
export async function sniffCompression(path: string): Promise<Compression> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
    if (bytesRead === 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
    return "none";
  } finally {
    await fh.close();
  }
}
