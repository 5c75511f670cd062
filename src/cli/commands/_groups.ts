/**
 * @module cli/commands/_groups
 * Default subcommands of command groups. citty runs a parent's `run` after
 * its subcommand's (STYLE.md, CLI library traps), so a group never has a
 * `run`; instead a group may name the leaf that runs when no subcommand is
 * given (`aegis mcp` serves, like `aegis mcp serve`). The runner
 * (cli/main.ts) asks {@link defaultSubCommand}; flags after the group then
 * belong to that leaf and are parsed as strictly as ever.
 */

const defaults = new WeakMap<object, string>();

/** Mark `name` as the subcommand `cmd` runs when none is given. Returns `cmd`. */
export function withDefaultSubCommand<T extends object>(cmd: T, name: string): T {
  defaults.set(cmd, name);
  return cmd;
}

/** The default subcommand of a group, if it has one. */
export function defaultSubCommand(cmd: object): string | undefined {
  return defaults.get(cmd);
}
