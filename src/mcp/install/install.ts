/**
 * @module mcp/install/install
 * `aegis mcp install` / `uninstall`: register the host MCP server with a
 * client the way that client documents it. Claude Code: `claude mcp add
 * --scope S aegis -- AEGIS mcp` when `claude` is on PATH (its own CLI
 * owns its config), else the config file it reads; Cursor and VS Code: their
 * config files (config-file.ts keeps every other entry). `json` prints the
 * snippet to paste anywhere.
 *
 * The launch command is this binary's absolute path plus `mcp`; when
 * AEGIS_HOME is set it is passed in the entry's `env`, so the client's
 * server uses the same daemon as the shell that installed it.
 */
import { homedir } from "node:os";
import { aegisHome, selfCommand } from "../../paths.ts";
import { ActionableError } from "../../cli/errors.ts";
import { addServer, removeServer } from "./config-file.ts";
import { CLIENT_NAMES, configTarget, type McpClient, type McpScope, type ServerLaunch, serverEntry } from "./targets.ts";

/** The server name used in every client. */
export const DEFAULT_SERVER_NAME = "aegis";

/** How clients start this binary's MCP server. */
export function launchCommand(env: NodeJS.ProcessEnv = process.env): ServerLaunch {
  const [command, ...args] = selfCommand("mcp");
  return { command: command!, args, env: env.AEGIS_HOME ? { AEGIS_HOME: aegisHome() } : {} };
}

/** What an install or uninstall did, for the message. */
export interface InstallOutcome {
  /** One sentence for stderr. */
  message: string;
  /** Data for stdout (the `json` snippet). */
  stdout?: string;
}

interface Options {
  client: McpClient;
  scope: McpScope;
  name: string;
  /** `claude` on PATH, or null. Tests pass a stub. */
  claude: string | null;
  home?: string;
  cwd?: string;
}

function where(opts: Options) {
  return { home: opts.home ?? homedir(), cwd: opts.cwd ?? process.cwd(), platform: process.platform, xdgConfig: process.env.XDG_CONFIG_HOME };
}

async function claudeCli(claude: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([claude, ...args], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    throw new ActionableError(`could not run ${claude}: ${(err as Error).message}`);
  }
  const [out, err, code] = await Promise.all([new Response(proc.stdout as ReadableStream).text(), new Response(proc.stderr as ReadableStream).text(), proc.exited]);
  return { code, output: `${out}${err}`.trim() };
}

/** Register the server with the client. */
export async function installServer(opts: Options, launch = launchCommand()): Promise<InstallOutcome> {
  const entry = serverEntry(opts.client, launch);
  if (opts.client === "json") {
    return { message: "Add this to your MCP client's configuration (the server map is \"mcpServers\" in most clients, \"servers\" in VS Code):", stdout: JSON.stringify({ mcpServers: { [opts.name]: entry } }, null, 2) };
  }
  const client = CLIENT_NAMES[opts.client];
  if (opts.client === "claude" && opts.claude) {
    const env = Object.entries(launch.env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    const add = ["mcp", "add", "--scope", opts.scope, ...env, opts.name, "--", launch.command, ...launch.args];
    let r = await claudeCli(opts.claude, add, where(opts).cwd);
    if (r.code !== 0 && /already exists/i.test(r.output)) {
      // Our own entry from an earlier install (perhaps of a binary that moved): replace it.
      const removed = await claudeCli(opts.claude, ["mcp", "remove", "--scope", opts.scope, opts.name], where(opts).cwd);
      if (removed.code !== 0) throw new ActionableError(`claude mcp remove --scope ${opts.scope} ${opts.name} failed (exit ${removed.code}): ${removed.output}`);
      r = await claudeCli(opts.claude, add, where(opts).cwd);
    }
    if (r.code !== 0) throw new ActionableError(`claude ${add.join(" ")} failed (exit ${r.code}): ${r.output}`, "check 'claude mcp list'; or register through the config file with 'aegis mcp install --client json'");
    return { message: `Registered "${opts.name}" with ${client} (${opts.scope} scope) through '${opts.claude} mcp add'` };
  }
  const target = configTarget(opts.client, opts.scope, where(opts));
  const change = addServer(target, opts.name, entry);
  const did = change === "unchanged" ? "is already registered" : change === "added" ? "registered" : "updated";
  return { message: `"${opts.name}" ${did} with ${client} (${opts.scope} scope) in ${target.path}` };
}

/** Remove the server from the client (other entries stay). */
export async function uninstallServer(opts: Options): Promise<InstallOutcome> {
  if (opts.client === "json") throw new ActionableError("--client json only prints a snippet; there is nothing to uninstall", "remove the entry from the file you pasted it into");
  const client = CLIENT_NAMES[opts.client];
  if (opts.client === "claude" && opts.claude) {
    const args = ["mcp", "remove", "--scope", opts.scope, opts.name];
    const r = await claudeCli(opts.claude, args, where(opts).cwd);
    if (r.code !== 0) {
      if (/not found|no .*server/i.test(r.output)) return { message: `"${opts.name}" is not registered with ${client} (${opts.scope} scope)` };
      throw new ActionableError(`claude ${args.join(" ")} failed (exit ${r.code}): ${r.output}`);
    }
    return { message: `Removed "${opts.name}" from ${client} (${opts.scope} scope) through '${opts.claude} mcp remove'` };
  }
  const target = configTarget(opts.client, opts.scope, where(opts));
  const change = removeServer(target, opts.name);
  return { message: change === "removed" ? `Removed "${opts.name}" from ${client} (${opts.scope} scope) in ${target.path}` : `"${opts.name}" is not registered with ${client} (${opts.scope} scope) in ${target.path}` };
}
