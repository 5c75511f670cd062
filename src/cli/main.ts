/**
 * @module cli/main
 * The `aegis` command line: resolves the command path, handles `help`,
 * `--help` and `--version` (only before `--`), parses flags strictly
 * ({@link parseCommandLine}) and runs the leaf command. citty supplies the
 * command definitions and usage rendering; it never sees the raw argv, so its
 * traps (silent unknown flags, `--help` after `--`, parent `run`) cannot bite.
 */
import { type ArgsDef, type CommandDef, renderUsage } from "citty";
import { DaemonUnavailable } from "../api/client.ts";
import { VERSION } from "../api/version.ts";
import { parseCommandLine, splitAtDoubleDash, suggest } from "./argv.ts";
import { defaultSubCommand } from "./commands/_groups.ts";
import { root } from "./commands/index.ts";
import { describeError, UsageError } from "./errors.ts";
import { out } from "./output.ts";

type AnyCommand = CommandDef<ArgsDef>;

async function resolve<T>(value: T | Promise<T> | (() => T | Promise<T>) | undefined): Promise<T | undefined> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

async function subCommandsOf(cmd: AnyCommand): Promise<Record<string, AnyCommand>> {
  const subs = (await resolve(cmd.subCommands)) ?? {};
  const resolved: Record<string, AnyCommand> = {};
  for (const [name, sub] of Object.entries(subs)) resolved[name] = (await resolve(sub)) as AnyCommand;
  return resolved;
}

async function findSub(cmd: AnyCommand, name: string): Promise<AnyCommand | undefined> {
  const subs = await subCommandsOf(cmd);
  if (name in subs) return subs[name];
  for (const sub of Object.values(subs)) {
    const meta = await resolve(sub.meta);
    const aliases = meta?.alias === undefined ? [] : Array.isArray(meta.alias) ? meta.alias : [meta.alias];
    if (aliases.includes(name)) return sub;
  }
  return undefined;
}

/** Usage text; colour codes only when stdout is a terminal. */
async function usage(cmd: AnyCommand, parent?: AnyCommand): Promise<string> {
  const text = await renderUsage(cmd, parent);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI colour codes
  return process.stdout.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Run the CLI with `argv` (without the program name). Exits the process with the command's code. */
export async function main(argv: string[]): Promise<void> {
  const code = await runCli(argv);
  // Flush stdout before exiting so piped output is never truncated.
  await new Promise<void>((r) => process.stdout.write("", () => r()));
  process.exit(code);
}

/** Run the CLI and return the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const { head } = splitAtDoubleDash(argv);
  if (head.length === 1 && (head[0] === "--version" || head[0] === "-v")) {
    out(`aegis ${VERSION}`);
    return 0;
  }
  let cmd: AnyCommand = root;
  let parent: AnyCommand | undefined;
  let i = 0;
  try {
    for (;;) {
      const subs = await subCommandsOf(cmd);
      if (Object.keys(subs).length === 0) break;
      const token = head[i];
      if (token === undefined || token.startsWith("-")) {
        if (head.slice(i).some((t) => t === "--help" || t === "-h")) {
          out(await usage(cmd, parent));
          return 0;
        }
        const fallback = defaultSubCommand(cmd);
        const leaf = fallback === undefined ? undefined : await findSub(cmd, fallback);
        if (leaf) {
          parent = cmd;
          cmd = leaf;
          continue;
        }
        throw new UsageError(`missing command${token ? ` before ${token}` : ""}\n\n${await usage(cmd, parent)}`);
      }
      if (token === "help") {
        const target = head[i + 1] !== undefined ? await findSub(cmd, head[i + 1]!) : undefined;
        out(await usage(target ?? cmd, target ? cmd : parent));
        return 0;
      }
      const sub = await findSub(cmd, token);
      if (!sub) {
        const near = suggest(token, Object.keys(subs));
        throw new UsageError(`unknown command "${token}"${near ? ` (did you mean "${near}"?)` : ""}; run 'aegis help' for the list`);
      }
      parent = cmd;
      cmd = sub;
      i++;
    }
    const own = head.slice(i);
    if (own.includes("--help") || own.includes("-h")) {
      out(await usage(cmd, parent));
      return 0;
    }
    const parsed = parseCommandLine(argv.slice(i), ((await resolve(cmd.args)) ?? {}) as ArgsDef);
    const result = await cmd.run?.({ rawArgs: argv.slice(i), args: parsed.values as never, cmd, data: parsed });
    return typeof result === "number" ? result : 0;
  } catch (err) {
    if (err instanceof DaemonUnavailable) {
      process.stderr.write(`${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ""}`);
      return 1;
    }
    const { exitCode, lines } = describeError(err);
    process.stderr.write(`${lines.join("\n")}\n`);
    return exitCode;
  }
}
