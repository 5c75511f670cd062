/**
 * @module cli/commands/image/inspect
 * `aegis image inspect REF`: the pulled image's record as JSON on stdout,
 * with its run config (Entrypoint, Cmd, Env, WorkingDir, User,
 * ExposedPorts, ...) as `docker image inspect` users look for it. Ports in
 * `exposed_ports` are informational: `--expose PORT` stays explicit.
 */
import { defineCommand } from "citty";
import { NotFound } from "../../../api/errors.ts";
import { printJson } from "../../output.ts";
import { client } from "../_shared.ts";

export default defineCommand({
  meta: { name: "inspect", description: "Show a pulled image's config and layers as JSON" },
  args: { ref: { type: "positional", required: true, valueHint: "REF", description: "Image reference or digest" } },
  async run({ args }) {
    const image = await client().findImage(args.ref);
    if (!image) throw new NotFound(`image ${args.ref} is not pulled`, `pull it first: aegis image pull ${args.ref}`);
    printJson(image);
  },
});
