/**
 * @module guest/harness/log
 * The harness's diagnostics on its stderr (the guest console), written with
 * one write(2) each. Not through `process.stderr`: creating that stream is
 * Bun's node:stream machinery, and its first use in the boot path cost
 * ~0.7 s under TCG with the JIT off (setup's first message, marks in the
 * guest), more than all of setup's mounts.
 */
import { writeSync } from "node:fs";

/** Write `aegis-harness: <msg>` as one line to stderr. */
export function log(msg: string): void {
  const bytes = Buffer.from(`aegis-harness: ${msg}\n`);
  for (let off = 0; off < bytes.length; ) off += writeSync(2, bytes, off, bytes.length - off);
}
