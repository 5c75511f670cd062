/**
 * @module cli/commands/instance/delete
 * `aegis instance delete NAME`.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete an instance with its disk, snapshot and logs" },
  args: { name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id" } },
  async run({ args }) {
    const inst = await client().getInstance(args.name);
    await client().deleteInstance(inst.id);
    say(`Instance "${inst.handle}" deleted`);
  },
});
