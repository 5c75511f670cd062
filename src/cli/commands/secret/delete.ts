/**
 * @module cli/commands/secret/delete
 * `aegis secret delete [APP] KEY`.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete a secret: APP KEY for an app, KEY for the workspace" },
  args: {
    first: { type: "positional", valueHint: "APP|KEY", required: true, description: "App name or id (2 arguments), or the secret name" },
    second: { type: "positional", valueHint: "KEY", required: false, description: "Secret name" },
  },
  async run({ args }) {
    if (args.second === undefined) {
      await client().deleteSecret(args.first);
      say(`Workspace secret ${args.first} deleted`);
    } else {
      await client().deleteSecret(args.second, args.first);
      say(`Secret ${args.second} deleted from ${args.first}`);
    }
  },
});
