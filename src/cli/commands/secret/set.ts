/**
 * @module cli/commands/secret/set
 * `aegis secret set KEY VALUE` (workspace) or `aegis secret set APP KEY VALUE` (app).
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client, commandLine } from "../_shared.ts";
import { bindingArgs, bindingBody, secretValue } from "./_value.ts";

export default defineCommand({
  meta: { name: "set", description: "Set a secret: KEY VALUE for the workspace, APP KEY VALUE for an app (VALUE '-' reads stdin)" },
  args: {
    first: { type: "positional", valueHint: "APP|KEY", required: true, description: "App name or id (3 arguments), or the secret name (2 arguments)" },
    second: { type: "positional", valueHint: "KEY|VALUE", required: true, description: "Secret name, or the value" },
    third: { type: "positional", valueHint: "VALUE", required: false, description: "Secret value ('-' reads it from stdin)" },
    ...bindingArgs,
  },
  async run(ctx) {
    const { args } = ctx;
    const binding = bindingBody(commandLine(ctx));
    const c = client();
    if (args.third === undefined) {
      await c.setSecret(args.first, await secretValue(args.second), undefined, binding);
      say(`Workspace secret ${args.first} set`);
    } else {
      await c.setSecret(args.second, await secretValue(args.third), args.first, binding);
      say(`Secret ${args.second} set for ${args.first}`);
    }
  },
});
