/**
 * @module cli/commands/image/pull
 * `aegis image pull REF`: pull, verify, unpack and build the rootfs.
 */
import { defineCommand } from "citty";
import { say } from "../../log.ts";
import { out, printJson } from "../../output.ts";
import { pullWithProgress } from "../../progress.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "pull", description: "Pull an image (registry ref, oci:PATH[:TAG] or docker-archive:PATH)" },
  args: { ref: { type: "positional", required: true, valueHint: "REF", description: "Image reference, e.g. alpine:3.21" }, ...jsonArgs },
  async run({ args }) {
    const image = await pullWithProgress(client(), args.ref);
    if (args.json) return printJson(image);
    say(`Pulled ${image.ref}`);
    out(image.digest);
  },
});
