/**
 * @module cli/commands/instance/_action
 * The shape shared by `instance pause|resume|stop`: one name, one action.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

/** A command that applies `action` to the named instance and reports the new state. */
export function instanceActionCommand(action: "pause" | "resume" | "stop", description: string, body?: unknown) {
  return defineCommand({
    meta: { name: action, description },
    args: { name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id" } },
    async run({ args }) {
      const inst = await client().instanceAction(args.name, action, body);
      say(`Instance ${inst.handle} ${inst.state}`);
    },
  });
}
