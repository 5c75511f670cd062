/**
 * @module api/schema/apps
 * Apps (named, publishable workloads) and their releases.
 */
import { z } from "zod";
import { NetworkPolicySchema, NetworkPolicyView, Port, ResourceName } from "./common.ts";

/** Body of `POST /v1/apps`. */
export const AppCreate = z
  .object({
    name: ResourceName,
    image: z.string().min(1, "must not be empty"),
    /** The command; absent (stored as []) runs the image's Entrypoint + Cmd. */
    command: z.array(z.string()).min(1, "must not be empty (put the command after --)").optional(),
    expose: z.array(Port).default([]),
    /**
     * Egress policy of the app's instances (`--allow`, `--deny`, `--no-network`
     * on `app create`); the default (public internet only) when absent. An
     * instance's own `network` replaces it, as any explicit field does.
     */
    network: NetworkPolicySchema.optional(),
  })
  .strict();
export type AppCreate = z.infer<typeof AppCreate>;

/** Body of `POST /v1/apps/{app}/releases`. */
export const ReleaseCreate = z
  .object({
    label: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 letters, digits, '.', '_' or '-'").optional(),
  })
  .strict();

/** An immutable release of an app. */
export const Release = z.object({
  id: z.string(),
  app_id: z.string(),
  label: z.string().nullable(),
  image_digest: z.string().nullable(),
  created_at: z.string(),
});
export type Release = z.infer<typeof Release>;

/** An app with its releases, newest first. */
export const App = z.object({
  id: z.string(),
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()),
  expose: z.array(z.number()),
  /** Egress policy of the app's instances (the default when none was given). */
  network: NetworkPolicyView,
  created_at: z.string(),
  releases: z.array(Release),
});
export type App = z.infer<typeof App>;

/** `GET /v1/apps`. */
export const AppList = z.object({ apps: z.array(App) });
