/**
 * @module cli/commands/secret/set-workspace
 * `aegis secret set-workspace KEY VALUE` (alias of the 2-argument `secret set`).
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client, commandLine } from "../_shared.ts";
import { bindingArgs, bindingBody, secretValue } from "./_value.ts";

export default defineCommand({
  meta: { name: "set-workspace", description: "Set a workspace-wide secret (VALUE '-' reads stdin)" },
  args: {
    key: { type: "positional", valueHint: "KEY", required: true, description: "Secret name" },
    value: { type: "positional", valueHint: "VALUE", required: true, description: "Secret value ('-' reads it from stdin)" },
    ...bindingArgs,
  },
  async run(ctx) {
    const { args } = ctx;
    await client().setSecret(args.key, await secretValue(args.value), undefined, bindingBody(commandLine(ctx)));
    say(`Workspace secret ${args.key} set`);
  },
});
