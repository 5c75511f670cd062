/**
 * @module daemon/log
 * The daemon's log: one JSON object per line appended to `data/aegisd.log`.
 * Callers pass names and ids only; secret values never reach a logger, and
 * guest-chosen text is clipped and escaped first (api/untrusted-text.ts).
 *
 * Rotation by size, like instance output logs (logs/log-store.ts): once the
 * file passes `maxBytes` (default 10 MiB) it becomes `aegisd.1.log`
 * (replacing the previous generation), so the log keeps between one and
 * two files' worth of its most recent lines. The rotation copies and then
 * truncates instead of renaming (control/file-ring.ts), because aegisd's
 * stderr is the same file (control/daemon-process.ts opens it with O_APPEND
 * for the child): a rename would leave stderr writing to the old generation
 * forever. The size is read from the file rather than counted, so bytes
 * written to stderr count too, and it is also checked every 10 s.
 */
import { appendFileSync } from "node:fs";
import { keepBounded, rotateIfLarge } from "../control/file-ring.ts";
import type { Logger } from "./api/deps.ts";

/** Default size at which aegisd.log is rotated. */
export const DAEMON_LOG_MAX_BYTES = 10 * 1024 * 1024;

/** A logger appending JSON lines to `path` (and mirroring to stderr when `echo`), rotated at `maxBytes`. */
export function fileLogger(path: string, echo = false, maxBytes = DAEMON_LOG_MAX_BYTES): Logger {
  // Checking the size costs a stat; do it every 64 lines and at least once a second, and on the first line.
  let sinceCheck = Number.POSITIVE_INFINITY;
  let lastCheck = 0;
  // Lines other code writes to stderr (the same file) count even when the logger itself is quiet.
  keepBounded(path, maxBytes, 10_000);
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const line = `${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`;
    const now = Date.now();
    if (++sinceCheck >= 64 || now - lastCheck >= 1000) {
      rotateIfLarge(path, maxBytes);
      sinceCheck = 0;
      lastCheck = now;
    }
    appendFileSync(path, line, { mode: 0o600 });
    if (echo) process.stderr.write(line);
  };
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}
