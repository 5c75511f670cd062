/**
 * @module cli/commands/image/list
 * `aegis image list`: REF, DIGEST, SIZE, CREATED.
 */
import { defineCommand } from "citty";
import { printJson, printTable } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List pulled images" },
  args: { ...jsonArgs },
  async run({ args }) {
    const { images } = await client().listImages();
    if (args.json) return printJson(images);
    printTable(
      [
        { title: "REF", width: 45 },
        { title: "DIGEST", width: 20 },
        { title: "SIZE", width: 11 },
        { title: "CREATED", width: 0 },
      ],
      images.map((i) => [i.ref, i.digest.slice(0, 19), `${(i.size / 1e6).toFixed(1)} MB`, i.created_at.replace(/\.\d{3}Z$/, "Z")]),
    );
  },
});
