/**
 * @module mcp/install/targets
 * Where each MCP client reads its server list, and the entry it expects
 * (from each client's documentation):
 *
 * | client | user scope | project scope | key | entry |
 * |---|---|---|---|---|
 * | Claude Code | `~/.claude.json` | `.mcp.json` | `mcpServers` | `{type: "stdio", command, args, env}` |
 * | Cursor | `~/.cursor/mcp.json` | `.cursor/mcp.json` | `mcpServers` | `{command, args, env}` |
 * | VS Code | the user profile's `mcp.json` (`~/.config/Code/User`, macOS `~/Library/Application Support/Code/User`) | `.vscode/mcp.json` | `servers` | `{type: "stdio", command, args, env}` |
 *
 * For Claude Code the documented way is `claude mcp add` (install.ts uses
 * it when `claude` is on PATH); the file is the fallback. Project scope
 * means the current directory.
 */
import { join } from "node:path";

/** Clients `aegis mcp install` knows. `json` prints the snippet instead. */
export const CLIENTS = ["claude", "cursor", "vscode", "json"] as const;
export type McpClient = (typeof CLIENTS)[number];

/** Where the configuration goes. */
export const SCOPES = ["user", "project"] as const;
export type McpScope = (typeof SCOPES)[number];

/** How the client starts our server. */
export interface ServerLaunch {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** A config file and the object in it that maps server names to entries. */
export interface ConfigTarget {
  path: string;
  key: "mcpServers" | "servers";
}

/** What the client is called in messages. */
export const CLIENT_NAMES: Record<McpClient, string> = { claude: "Claude Code", cursor: "Cursor", vscode: "VS Code", json: "JSON" };

/** The file and key for a client (not `json`) and scope. */
export function configTarget(client: Exclude<McpClient, "json">, scope: McpScope, where: { home: string; cwd: string; platform: NodeJS.Platform; xdgConfig?: string }): ConfigTarget {
  if (client === "claude") return { path: scope === "user" ? join(where.home, ".claude.json") : join(where.cwd, ".mcp.json"), key: "mcpServers" };
  if (client === "cursor") return { path: join(scope === "user" ? where.home : where.cwd, ".cursor", "mcp.json"), key: "mcpServers" };
  if (scope === "project") return { path: join(where.cwd, ".vscode", "mcp.json"), key: "servers" };
  const userDir =
    where.platform === "darwin" ? join(where.home, "Library", "Application Support", "Code", "User") : join(where.xdgConfig && where.xdgConfig.length > 0 ? where.xdgConfig : join(where.home, ".config"), "Code", "User");
  return { path: join(userDir, "mcp.json"), key: "servers" };
}

/** The entry a client stores for our server. */
export function serverEntry(client: McpClient, launch: ServerLaunch): Record<string, unknown> {
  const entry: Record<string, unknown> = client === "cursor" ? {} : { type: "stdio" };
  entry.command = launch.command;
  entry.args = launch.args;
  if (Object.keys(launch.env).length > 0) entry.env = launch.env;
  return entry;
}
