/**
 * @module cli/commands/e2b/env
 * `aegis e2b env`: the `export ...` lines that point the unmodified e2b SDK
 * (JS or Python) at this aegisd, for `eval "$(aegis e2b env)"`:
 * E2B_API_URL and E2B_SANDBOX_URL (the E2B front on 127.0.0.1), E2B_DOMAIN
 * (so `sandbox.getHost(port)` is `PORT-ID.localhost:ROUTER_PORT`) and
 * E2B_API_KEY (generated per AEGIS_HOME). The key is printed because the
 * user asked for it; it goes to stdout only.
 */
import { defineCommand } from "citty";
import { out, printJson } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

/** A value quoted for POSIX shells. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

export default defineCommand({
  meta: { name: "env", description: "Print the export lines for the e2b SDK (use: eval \"$(aegis e2b env)\")" },
  args: { ...jsonArgs },
  async run({ args }) {
    const env = await client().e2bEnv();
    if (args.json) return printJson(env);
    const vars: [string, string][] = [
      ["E2B_API_URL", env.api_url],
      ["E2B_SANDBOX_URL", env.sandbox_url],
      ["E2B_DOMAIN", env.domain],
      ["E2B_API_KEY", env.api_key],
    ];
    for (const [k, v] of vars) out(`export ${k}=${shellQuote(v)}`);
  },
});
