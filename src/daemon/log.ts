/**
 * @module daemon/log
 * The daemon's log: one JSON object per line appended to `data/aegisd.log`.
 * Callers pass names and ids only; secret values never reach a logger.
 */
import { appendFileSync } from "node:fs";
import type { Logger } from "./api/deps.ts";

/** A logger appending JSON lines to `path` (and mirroring to stderr when `echo`). */
export function fileLogger(path: string, echo = false): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    const line = `${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`;
    appendFileSync(path, line, { mode: 0o600 });
    if (echo) process.stderr.write(line);
  };
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}
