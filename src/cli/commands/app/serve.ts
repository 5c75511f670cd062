/**
 * @module cli/commands/app/serve
 * `aegis app serve APP`: serve the app's latest release until Ctrl+C.
 */
import { defineCommand } from "citty";
import { serve } from "../_serve.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve an app from its latest published release" },
  args: { app: { type: "positional", required: true, valueHint: "APP_NAME", description: "App name or id" } },
  async run({ args }) {
    const app = await client().getApp(args.app);
    return serve({ app: app.id }, app.name);
  },
});
