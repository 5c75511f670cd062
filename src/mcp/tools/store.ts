/**
 * @module mcp/tools/store
 * What the host stores: images (`image_pull`, `image_list`) and secret
 * names (`secret_list`). No tool returns or accepts a secret value: the
 * person sets secrets with `aegis secret set KEY VALUE`, and tools only
 * name them (the `secrets` argument of run and instance_start).
 */
import { z } from "zod";
import { fromEnvelope } from "../../api/errors.ts";
import type { ImageRecord } from "../../api/schema/images.ts";
import { ok } from "../result.ts";
import { defineTool } from "../tool.ts";

function imageView(i: ImageRecord) {
  return { ref: i.ref, digest: i.digest, platform: i.platform, size: i.size, rootfs_size: i.rootfs_size, entrypoint: i.config?.entrypoint ?? null, cmd: i.config?.cmd ?? null, working_dir: i.working_dir, created_at: i.created_at };
}

const imagePull = defineTool({
  name: "image_pull",
  title: "Pull an image",
  description: "Download an OCI image (alpine:3.21, ghcr.io/org/img:tag, localhost:5000/x@sha256:..., oci:/dir[:tag], docker-archive:/file.tar) for this host's platform, verify it and build its root filesystem. run and instance_start pull by themselves; use this to pull ahead. Returns the image (ref, digest, size, entrypoint, cmd).",
  input: z.object({ ref: z.string().min(1).describe("Image reference") }).strict(),
  async run({ ref }, { link }) {
    return link.call(async (c) => {
      for await (const event of c.pullImage(ref)) {
        if (event.type === "done") return ok(imageView(event.image));
        if (event.type === "error") throw fromEnvelope({ error: event.error });
      }
      throw new Error(`the pull of ${ref} ended without a result`);
    });
  },
});

const imageList = defineTool({
  name: "image_list",
  title: "List local images",
  description: "List the images pulled on this host: reference, digest, platform, download size, root filesystem size, entrypoint and cmd.",
  input: z.object({}).strict(),
  readOnly: true,
  async run(_args, { link }) {
    return link.call(async (c) => ok({ images: (await c.listImages()).images.map(imageView) }));
  },
});

const secretList = defineTool({
  name: "secret_list",
  title: "List secret names",
  description: "List the names of the secrets stored on this host (workspace scope, or an app's), never their values. Pass names in the secrets argument of run or instance_start to inject them as environment variables. Secrets are set by the person, with `aegis secret set KEY VALUE`; no tool can read or set a value.",
  input: z.object({ app: z.string().min(1).optional().describe("An app's secrets instead of the workspace's") }).strict(),
  readOnly: true,
  async run({ app }, { link }) {
    return link.call(async (c) => {
      const list = await c.listSecrets(app);
      return ok({ scope: list.scope, secrets: list.secrets.map((s) => ({ name: s.name, created_at: s.created_at, updated_at: s.updated_at })) });
    });
  },
});

/** The store tools. */
export const storeTools = [imagePull, imageList, secretList];
