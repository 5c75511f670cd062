/**
 * @module cli/commands/kit/uninstall
 * `aegis kit uninstall KIT`.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "uninstall", description: "Remove an installed kit" },
  args: { name: { type: "positional", valueHint: "KIT_NAME", required: true, description: "Kit name" } },
  async run({ args }) {
    await client().uninstallKit(args.name);
    say(`Kit "${args.name}" uninstalled`);
  },
});
