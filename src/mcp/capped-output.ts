/**
 * @module mcp/capped-output
 * Bounded collection of a process's output for `run` and `exec`: at most
 * {@link OUTPUT_CAP_BYTES} per stream are kept (the head, which holds the
 * first error); the rest is counted and reported with a
 * `[truncated: N more bytes]` marker, so a model never mistakes a cut
 * stream for the whole one and a chatty guest cannot fill the host's memory.
 */

/** Bytes kept per output stream (256 KiB). */
export const OUTPUT_CAP_BYTES = 256 * 1024;

/** One stream's kept head and dropped-byte count. */
export class CappedOutput {
  private readonly chunks: Uint8Array[] = [];
  private kept = 0;
  /** Bytes received beyond the cap. */
  dropped = 0;

  constructor(private readonly cap = OUTPUT_CAP_BYTES) {}

  /** Add a chunk. */
  push(bytes: Uint8Array): void {
    const room = this.cap - this.kept;
    if (room > 0) {
      const head = bytes.length <= room ? bytes : bytes.subarray(0, room);
      this.chunks.push(head);
      this.kept += head.length;
    }
    this.dropped += Math.max(0, bytes.length - Math.max(0, room));
  }

  /** The kept bytes as UTF-8 text (invalid sequences become U+FFFD), with the marker when cut. */
  text(): string {
    const text = Buffer.concat(this.chunks).toString("utf8");
    return this.dropped > 0 ? `${text}\n[truncated: ${this.dropped} more bytes]` : text;
  }
}
