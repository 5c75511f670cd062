/**
 * @module cli/commands/kit/list
 * `aegis kit list`: NAME, VERSION, STATUS, IMAGE, DESCRIPTION.
 */
import { defineCommand } from "citty";
import { printJson, printTable } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List installed kits" },
  args: { ...jsonArgs },
  async run({ args }) {
    const { kits } = await client().listKits();
    if (args.json) return printJson(kits);
    printTable(
      [
        { title: "NAME", width: 13 },
        { title: "VERSION", width: 11 },
        { title: "STATUS", width: 11 },
        { title: "IMAGE", width: 31 },
        { title: "DESCRIPTION", width: 0 },
      ],
      kits.map((k) => [k.manifest.name, k.manifest.version, k.status, k.manifest.image, k.manifest.description ?? ""]),
    );
  },
});
