/**
 * @module control/file-ring
 * Files that other processes append to and that must stay bounded: aegisd's
 * own log (its stderr is the same file) and each VM's serial console (QEMU
 * writes it). Such a file is kept as a two-generation ring: when it passes
 * its limit it is copied to `<name>.1.log` (replacing the previous
 * generation) and truncated in place. Copy-and-truncate rather than rename,
 * because the writer holds the file open with O_APPEND: after a truncate its
 * next write lands at the new end, whereas after a rename it would keep
 * growing the old generation. Readers take only the tail ({@link readTail}),
 * never the whole file.
 */
import { closeSync, copyFileSync, existsSync, fstatSync, openSync, readSync, statSync, truncateSync } from "node:fs";

/** The previous generation of a ring file: `x.log` -> `x.1.log` (other names get `.1`). */
export function rotatedPath(path: string): string {
  return /\.log$/.test(path) ? path.replace(/\.log$/, ".1.log") : `${path}.1`;
}

/** Rotate `path` when it is larger than `maxBytes`. Returns whether it rotated. */
export function rotateIfLarge(path: string, maxBytes: number): boolean {
  if (!existsSync(path) || statSync(path).size <= maxBytes) return false;
  copyFileSync(path, rotatedPath(path));
  truncateSync(path, 0);
  return true;
}

/** The last `maxBytes` of a file as UTF-8 (a partial first line dropped), or "" when it does not exist. */
export function readTail(path: string, maxBytes = 64 * 1024): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, buf, got, len - got, size - len + got);
      if (n === 0) break;
      got += n;
    }
    const text = buf.subarray(0, got).toString("utf8");
    if (len === size) return text;
    const nl = text.indexOf("\n");
    return nl >= 0 ? text.slice(nl + 1) : text;
  } finally {
    closeSync(fd);
  }
}

/** The last `n` non-empty lines of a file, read from its tail only. */
export function lastLines(path: string, n: number, maxBytes = 64 * 1024): string[] {
  return readTail(path, maxBytes)
    .split("\n")
    .filter((l) => l.trim())
    .slice(-n);
}

/**
 * Keep `path` within `maxBytes` (plus what is written between two checks)
 * by checking every `intervalMs`. Returns the stop function.
 */
export function keepBounded(path: string, maxBytes: number, intervalMs = 1000): () => void {
  const timer = setInterval(() => rotateIfLarge(path, maxBytes), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
