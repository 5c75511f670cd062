/**
 * @module cli/commands/app/delete
 * `aegis app delete APP`: the app, its releases and its secrets.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete an app with its releases and secrets" },
  args: { app: { type: "positional", valueHint: "APP", required: true, description: "App name or id" } },
  async run({ args }) {
    const app = await client().getApp(args.app);
    await client().deleteApp(app.id);
    say(`App "${app.name}" deleted`);
  },
});
