/**
 * @module cli/commands/app/create
 * `aegis app create --name NAME --image IMAGE [--expose PORT]... [--allow RULE | --deny RULE]... [--no-network] -- COMMAND [ARGS...]`.
 * The egress flags are `run`'s (same parsing, same errors): the app's
 * instances get that policy unless they are started with their own.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { client, commandLine, jsonArgs } from "../_shared.ts";
import { parsePorts } from "../_ports.ts";
import { networkArgs, networkBody } from "../_instance-args.ts";

export default defineCommand({
  meta: { name: "create", description: "Create an app definition; the command goes after -- (default: the image's own)" },
  args: {
    name: { type: "string", required: true, valueHint: "NAME", description: "App name" },
    image: { type: "string", required: true, valueHint: "IMAGE", description: "OCI image reference" },
    expose: { type: "string", valueHint: "PORT", repeatable: true, description: "Port to expose (repeatable)" },
    ...networkArgs,
    ...jsonArgs,
  },
  async run(ctx) {
    const cl = commandLine(ctx);
    const { multi, rest } = cl;
    const network = networkBody(ctx.args as typeof cl.values, cl);
    const app = await client().createApp({
      name: ctx.args.name,
      image: ctx.args.image,
      // Without a command the image's ENTRYPOINT + CMD run, as with `docker run IMAGE`.
      ...(rest.length > 0 ? { command: rest } : {}),
      expose: parsePorts(multi.expose ?? []),
      ...(network ? { network } : {}),
    });
    if (ctx.args.json) printJson(app);
    else say(`App created: ${app.name} (id=${app.id})`);
  },
});
