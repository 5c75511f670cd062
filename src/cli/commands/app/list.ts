/**
 * @module cli/commands/app/list
 * `aegis app list`: NAME, IMAGE, ID.
 */
import { defineCommand } from "citty";
import { printJson, printTable } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List apps" },
  args: { ...jsonArgs },
  async run({ args }) {
    const { apps } = await client().listApps();
    if (args.json) return printJson(apps);
    printTable(
      [
        { title: "NAME", width: 21 },
        { title: "IMAGE", width: 31 },
        { title: "ID", width: 0 },
      ],
      apps.map((a) => [a.name, a.image, a.id]),
    );
  },
});
