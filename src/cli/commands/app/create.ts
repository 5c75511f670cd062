/**
 * @module cli/commands/app/create
 * `aegis app create --name NAME --image IMAGE [--expose PORT]... -- COMMAND [ARGS...]`.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { client, commandLine, jsonArgs } from "../_shared.ts";
import { parsePorts } from "../_ports.ts";

export default defineCommand({
  meta: { name: "create", description: "Create an app definition; the command goes after -- (default: the image's own)" },
  args: {
    name: { type: "string", required: true, valueHint: "NAME", description: "App name" },
    image: { type: "string", required: true, valueHint: "IMAGE", description: "OCI image reference" },
    expose: { type: "string", valueHint: "PORT", repeatable: true, description: "Port to expose (repeatable)" },
    ...jsonArgs,
  },
  async run(ctx) {
    const { multi, rest } = commandLine(ctx);
    const app = await client().createApp({
      name: ctx.args.name,
      image: ctx.args.image,
      // Without a command the image's ENTRYPOINT + CMD run, as with `docker run IMAGE`.
      ...(rest.length > 0 ? { command: rest } : {}),
      expose: parsePorts(multi.expose ?? []),
    });
    if (ctx.args.json) printJson(app);
    else say(`App created: ${app.name} (id=${app.id})`);
  },
});
