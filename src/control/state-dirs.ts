/**
 * @module control/state-dirs
 * The owner-only directories of an AEGIS_HOME, created by whichever process
 * gets there first (`aegis up` before it spawns aegisd, or aegisd itself).
 */
import { chmodSync, mkdirSync } from "node:fs";
import type { StatePaths } from "../paths.ts";

/** Create the state directories with owner-only permissions. */
export function ensureStateDirs(paths: StatePaths): void {
  for (const dir of [paths.home, paths.data, paths.kits]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
}
