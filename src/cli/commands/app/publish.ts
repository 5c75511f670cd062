/**
 * @module cli/commands/app/publish
 * `aegis app publish APP [--label LABEL]`: pull the app's image, build its
 * rootfs and record an immutable release.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { pullWithProgress } from "../../progress.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "publish", description: "Publish a new release of an app" },
  args: {
    app: { type: "positional", required: true, valueHint: "APP_NAME", description: "App name or id" },
    label: { type: "string", valueHint: "LABEL", description: "Human-readable release label (e.g. v1)" },
    ...jsonArgs,
  },
  async run({ args }) {
    const api = client();
    const app = await api.getApp(args.app);
    await pullWithProgress(api, app.image);
    const release = await api.publishRelease(app.id, args.label);
    if (args.json) return printJson(release);
    say(`Published release ${release.id}${release.label ? ` (label=${release.label})` : ""}`);
  },
});
