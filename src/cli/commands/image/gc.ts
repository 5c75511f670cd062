/**
 * @module cli/commands/image/gc
 * `aegis image gc`: delete blobs and rootfs files no image or release uses.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { printJson } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "gc", description: "Delete cached image files that nothing references" },
  args: { ...jsonArgs },
  async run({ args }) {
    const r = await client().gcImages();
    if (args.json) return printJson(r);
    say(`Removed ${r.removedBlobs} blobs and ${r.removedRootfs} rootfs files, freed ${(r.freedBytes / 1e6).toFixed(1)} MB`);
  },
});
