/**
 * @module cli/commands/image/rm
 * `aegis image rm REF`: forget an image and free the files nothing else uses.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "rm", description: "Remove a pulled image (files still used by releases stay)" },
  args: { ref: { type: "positional", required: true, valueHint: "REF", description: "Image reference or digest" } },
  async run({ args }) {
    const r = await client().removeImage(args.ref);
    say(`Image ${r.ref} removed (freed ${(r.gc.freedBytes / 1e6).toFixed(1)} MB)`);
  },
});
