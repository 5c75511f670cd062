/**
 * @module cli/commands/secret/list
 * `aegis secret list [APP]`: names only; without APP, the workspace's.
 */
import { defineCommand } from "citty";
import { out, printJson } from "../../output.ts";
import { describeEgress } from "../../../api/egress-secrets.ts";
import { client, jsonArgs } from "../_shared.ts";

/** Print a secret list in the spec's layout. */
export async function listSecrets(app: string | undefined, json: boolean | undefined): Promise<void> {
  const list = await client().listSecrets(app);
  if (json) return printJson(list);
  out(app ? `Secrets for ${app}:` : "Workspace secrets:");
  for (const s of list.secrets) {
    const binding = describeEgress(s.name, s.egress);
    out(binding ? `  ${s.name}  (${binding})` : `  ${s.name}`);
  }
}

export default defineCommand({
  meta: { name: "list", description: "List secret names of an app, or of the workspace without APP" },
  args: {
    app: { type: "positional", valueHint: "APP", required: false, description: "App name or id" },
    ...jsonArgs,
  },
  run: ({ args }) => listSecrets(args.app, args.json),
});
