/**
 * @module api/schema/kits
 * Kit manifests (YAML or JSON, validated here) and the `/v1/kits` endpoints.
 * The schema is a superset of the spec's (name, version, description, image):
 * optional instance defaults and daemons (DESIGN.md section 12).
 */
import { z } from "zod";
import { SpawnCapabilitiesGrant } from "./capabilities.ts";
import { NetworkPolicySchema, ResourceName, SecretName } from "./common.ts";

/** A host daemon a kit ships (e.g. the Telegram gateway), started by `aegis up` when its config exists. */
export const KitDaemon = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "must be a lowercase program name"),
    command: z.array(z.string().min(1)).min(1, "must name the program to run"),
    description: z.string().optional(),
    /** Path relative to AEGIS_HOME that must exist before the daemon is started. */
    requires_config: z.string().optional(),
  })
  .strict();

export type KitDaemon = z.infer<typeof KitDaemon>;

/** Defaults `aegis instance start --kit NAME` applies; explicit flags override them. */
export const KitInstanceDefaults = z
  .object({
    command: z.array(z.string()).min(1).optional(),
    image: z.string().min(1).optional(),
    secrets: z.array(SecretName).optional(),
    expose: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
    memory: z.number().int().min(64).optional(),
    cpus: z.number().int().min(1).optional(),
    /** Spawn capabilities of the kit's instances (api/schema/capabilities.ts); `instance start` flags override each field. */
    capabilities: SpawnCapabilitiesGrant.optional(),
    /**
     * Egress policy of the kit's instances, in the API's form
     * (`{ mode: default | none, rules: [{ action: allow | deny, target: RULE }] }`,
     * api/network-policy.ts). An instance started with `--allow`/`--deny`/`--no-network`
     * replaces it; its MCP children inherit it and can only narrow it.
     */
    network: NetworkPolicySchema.optional(),
  })
  .strict();

/** A kit manifest as installed. */
export const KitManifest = z
  .object({
    name: ResourceName,
    version: z.string().min(1, "must not be empty"),
    description: z.string().optional(),
    image: z.string().min(1, "must not be empty"),
    instance: KitInstanceDefaults.optional(),
    daemons: z.array(KitDaemon).optional(),
  })
  .strict();
export type KitManifest = z.infer<typeof KitManifest>;

/** An installed kit: its manifest, when it was installed and whether its parts are present. */
export const Kit = z.object({
  manifest: KitManifest,
  installed_at: z.string(),
  status: z.string(),
});
export type Kit = z.infer<typeof Kit>;

/** `GET /v1/kits`. */
export const KitList = z.object({ kits: z.array(Kit) });
