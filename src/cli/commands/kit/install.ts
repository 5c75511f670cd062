/**
 * @module cli/commands/kit/install
 * `aegis kit install MANIFEST`: validate the YAML/JSON manifest, send it to aegisd.
 */
import { defineCommand } from "citty";
import { loadKitManifest } from "./_manifest.ts";
import { say } from "../../log.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "install", description: "Install a kit from a YAML or JSON manifest" },
  args: { manifest: { type: "positional", valueHint: "MANIFEST.yaml", required: true, description: "Path to the kit manifest" } },
  async run({ args }) {
    const kit = await client().installKit(loadKitManifest(args.manifest));
    say(`Kit ${kit.manifest.name} v${kit.manifest.version.replace(/^v/, "")} installed`);
  },
});
