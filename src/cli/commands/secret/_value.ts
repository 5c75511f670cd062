/**
 * @module cli/commands/secret/_value
 * Reading a secret value: `-` means "read it from stdin", which keeps the
 * value out of the process list and shell history. Also the binding flags
 * (`--host`, `--raw`) that say whether the value may enter a guest
 * (api/egress-secrets.ts).
 */
import { EgressBindingError, parseBoundHost } from "../../../api/egress-secrets.ts";
import type { AegisArgsDef, ParsedCommandLine } from "../../argv.ts";
import { UsageError } from "../../errors.ts";

/** `--host` / `--raw`. */
export const bindingArgs = {
  host: {
    type: "string",
    valueHint: "NAME[:PORT]",
    repeatable: true,
    description: "Keep the value out of guests: they see a placeholder, and aegisd's egress proxy puts the value into HTTPS request headers to this host only (repeatable)",
  },
  raw: { type: "boolean", description: "Put the value itself into guests' environment (the default for secrets other than OPENAI_API_KEY / ANTHROPIC_API_KEY)" },
} as const satisfies AegisArgsDef;

/** The binding part of the request body from `--host`/`--raw` (empty: the default). */
export function bindingBody(cl: ParsedCommandLine): { hosts?: string[]; raw?: true } {
  const hosts = cl.multi.host ?? [];
  if (cl.values.raw === true) {
    if (hosts.length > 0) throw new UsageError("--raw cannot be combined with --host (a raw secret is not substituted anywhere)");
    return { raw: true };
  }
  if (hosts.length === 0) return {};
  for (const h of hosts) {
    try {
      parseBoundHost(h);
    } catch (err) {
      if (err instanceof EgressBindingError) throw new UsageError(err.message);
      throw err;
    }
  }
  return { hosts };
}

/** The value to store: the argument itself, or stdin (trailing newline removed) for `-`. */
export async function secretValue(arg: string): Promise<string> {
  if (arg !== "-") return arg;
  const text = await Bun.stdin.text();
  const value = text.replace(/\r?\n$/, "");
  if (value.length === 0) throw new UsageError("no secret value on stdin");
  return value;
}
