/**
 * @module cli/commands/secret/_value
 * Reading a secret value: `-` means "read it from stdin", which keeps the
 * value out of the process list and shell history.
 */
import { UsageError } from "../../errors.ts";

/** The value to store: the argument itself, or stdin (trailing newline removed) for `-`. */
export async function secretValue(arg: string): Promise<string> {
  if (arg !== "-") return arg;
  const text = await Bun.stdin.text();
  const value = text.replace(/\r?\n$/, "");
  if (value.length === 0) throw new UsageError("no secret value on stdin");
  return value;
}
