/**
 * @module cli/commands/_ports
 * Parsing `--expose PORT` values.
 */
import { UsageError } from "../errors.ts";

/** Parse port numbers (1-65535); a bad value is a usage error naming it. */
export function parsePorts(values: string[]): number[] {
  return values.map((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new UsageError(`invalid --expose value "${v}": expected a port number 1-65535`);
    return n;
  });
}
