/**
 * @module cli/commands/app/create
 * `aegis app create --name NAME --image IMAGE [--expose PORT]... -- COMMAND [ARGS...]`.
 */
import { defineCommand } from "citty";
import { UsageError } from "../../errors.ts";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { client, commandLine, jsonArgs } from "../_shared.ts";
import { parsePorts } from "../_ports.ts";

export default defineCommand({
  meta: { name: "create", description: "Create an app definition; the command goes after --" },
  args: {
    name: { type: "string", required: true, valueHint: "NAME", description: "App name" },
    image: { type: "string", required: true, valueHint: "IMAGE", description: "OCI image reference" },
    expose: { type: "string", valueHint: "PORT", repeatable: true, description: "Port to expose (repeatable)" },
    ...jsonArgs,
  },
  async run(ctx) {
    const { multi, rest } = commandLine(ctx);
    if (rest.length === 0) throw new UsageError("missing command: put it after --, e.g. aegis app create --name web --image alpine -- httpd -f");
    const app = await client().createApp({
      name: ctx.args.name,
      image: ctx.args.image,
      command: rest,
      expose: parsePorts(multi.expose ?? []),
    });
    if (ctx.args.json) printJson(app);
    else say(`App created: ${app.name} (id=${app.id})`);
  },
});
