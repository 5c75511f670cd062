/**
 * @module cli/commands/_shared
 * Flag fragments and helpers shared by commands.
 */
import type { ArgsDef } from "citty";
import { AegisClient } from "../../api/client.ts";
import { statePaths } from "../../paths.ts";
import type { ParsedCommandLine } from "../argv.ts";

/** `--json`: machine-readable output on stdout. */
export const jsonArgs = {
  json: { type: "boolean", description: "Print machine-readable JSON on stdout" },
} as const satisfies ArgsDef;

/** The parsed command line the runner attaches to every command context. */
export function commandLine(ctx: { data?: unknown }): ParsedCommandLine {
  return ctx.data as ParsedCommandLine;
}

/** A client of this AEGIS_HOME's daemon. */
export function client(): AegisClient {
  return new AegisClient(statePaths().socket);
}
