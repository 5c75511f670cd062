/**
 * @module guest/harness/uptime
 * The guest's uptime in whole milliseconds (what `ready`, `ping` and the
 * boot diagnostics report).
 */
import { readFileSync } from "node:fs";

/** Guest uptime (ms) from /proc/uptime. */
export function uptimeMs(): number {
  return Math.round(Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000);
}
