/**
 * @module cli/commands/instance/start
 * `aegis instance start [--name N] [--kit K] [--image I] ... [-- CMD...]`:
 * create and boot an instance, or start the stopped instance of that name.
 * `--allow-spawn`, `--max-children`, `--max-depth` and `--allow-image` grant
 * spawn capabilities to its MCP server (see _capabilities.ts).
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { pullWithProgress } from "../../progress.ts";
import { instanceArgs, instanceBody, networkArgs, processArgs, vmArgs } from "../_instance-args.ts";
import { client, commandLine, jsonArgs } from "../_shared.ts";
import { capabilitiesFromFlags, capabilityArgs } from "./_capabilities.ts";

export default defineCommand({
  meta: { name: "start", description: "Start an instance (a kit supplies defaults; explicit flags override; the command goes after --)" },
  args: {
    name: { type: "string", valueHint: "NAME", description: "Instance name (handle); restarts a stopped instance of that name" },
    kit: { type: "string", valueHint: "KIT", description: "Use an installed kit's command, image and defaults" },
    ...vmArgs,
    ...networkArgs,
    ...instanceArgs,
    ...processArgs,
    ...capabilityArgs,
    ...jsonArgs,
  },
  async run(ctx) {
    const cl = commandLine(ctx);
    const body = instanceBody(cl.values, cl);
    const capabilities = capabilitiesFromFlags(cl);
    if (capabilities) body.capabilities = capabilities;
    const api = client();
    if (body.image && !(await api.findImage(body.image))) await pullWithProgress(api, body.image);
    const inst = await api.createInstance(body);
    if (ctx.args.json) return printJson(inst);
    say(`Instance ${inst.handle} (${inst.id}) ${inst.state}`);
  },
});
