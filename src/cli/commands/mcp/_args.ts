/**
 * @module cli/commands/mcp/_args
 * Flags shared by `aegis mcp install` and `uninstall`.
 */
import type { ArgsDef } from "citty";
import { DEFAULT_SERVER_NAME } from "../../../mcp/install/install.ts";
import { CLIENTS, SCOPES } from "../../../mcp/install/targets.ts";
import { UsageError } from "../../errors.ts";

/** `--client`, `--scope`, `--name`. */
export const installArgs = {
  client: { type: "enum", options: [...CLIENTS], default: "claude", valueHint: "CLIENT", description: "claude (Claude Code), cursor, vscode, or json (print the snippet)" },
  scope: { type: "enum", options: [...SCOPES], default: "user", valueHint: "SCOPE", description: "user (every project) or project (the current directory)" },
  name: { type: "string", default: DEFAULT_SERVER_NAME, valueHint: "NAME", description: "Server name in the client's config" },
} as const satisfies ArgsDef;

/** Validate `--name` (a key in the client's config). */
export function serverName(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new UsageError(`invalid --name "${value}": use 1-64 letters, digits, '-' or '_'`);
  return value;
}
