/**
 * @module daemon/images/digest
 * sha256 digests of bytes and files.
 */
import { DigestMismatch } from "./errors.ts";

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

/** The hex part of a `sha256:<hex>` digest. */
export function digestHex(digest: string): string {
  return digest.slice("sha256:".length);
}

/** Throw {@link DigestMismatch} unless `bytes` hash to `expected`. */
export function verifyBytes(bytes: Uint8Array, expected: string, what: string): void {
  const actual = sha256Digest(bytes);
  if (actual !== expected) throw new DigestMismatch(what, expected, actual);
}

/** Stream a file and return its `sha256:<hex>` digest and size. */
export async function digestFile(path: string): Promise<{ digest: string; size: number }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let size = 0;
  for await (const chunk of Bun.file(path).stream()) {
    hasher.update(chunk);
    size += chunk.byteLength;
  }
  return { digest: `sha256:${hasher.digest("hex")}`, size };
}
