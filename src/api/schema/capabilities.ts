/**
 * @module api/schema/capabilities
 * Spawn capabilities: what an instance may do through its MCP server
 * (`aegis-mcp-guest`, see mcp.ts). Kept apart from mcp.ts so that the
 * instance and kit schemas can use them without an import cycle (mcp.ts
 * imports the instance schemas).
 *
 * Where they come from: the kit manifest (`instance.capabilities`) and
 * `aegis instance start` flags (`--allow-spawn`, `--max-children`,
 * `--max-depth`, `--allow-image`), merged field by field (flags win), then
 * every unset field takes its default. aegisd stores the result with the
 * instance and never takes capabilities from a guest.
 */
import { z } from "zod";
import { SecretName } from "./common.ts";

/**
 * The allowed-image pattern (and the `instance_spawn` image) naming the base
 * busybox rootfs. A child spawned without an image runs on it; it must be
 * listed in `allowed_images` like any image (`*` does not include it).
 */
export const BASE_IMAGE = "@base";

/**
 * An allowed-image entry: `*` (any registry image), a prefix glob ending in
 * `*` (`docker.io/library/*`, matched against the canonical name), an exact
 * reference (`alpine`, `python:3.12-alpine`; without a tag it allows every tag
 * of that repository), or `@base` (the base rootfs).
 */
export const ImagePattern = z
  .string()
  .min(1, "must not be empty")
  .max(512)
  .refine((s) => !/\s/.test(s), "must not contain whitespace")
  .refine((s) => !s.slice(0, -1).includes("*"), "may contain '*' only at the end");

/** The fields with their bounds, no defaults (shared by the two schemas below). */
const fields = {
  /** May this instance start child VMs at all. */
  spawn: z.boolean(),
  /** Deepest allowed nesting: a top-level instance is depth 0, its children depth 1. */
  max_depth: z.number().int().min(0).max(16),
  /** Children this instance may have at once (stopped ones count until deleted). */
  max_children: z.number().int().min(0).max(256),
  /** Images a child may run ({@link ImagePattern}). */
  allowed_images: z.array(ImagePattern),
  /** Largest memory a child may ask for, in MiB. */
  max_memory_mb: z.number().int().min(0).max(65536),
  /** Largest vCPU count a child may ask for. */
  max_vcpus: z.number().int().min(0).max(64),
  /** Secret names this instance may pass to its children. */
  allowed_secrets: z.array(SecretName),
  /** Ports this instance (and each child, at spawn) may have exposed at once. */
  max_exposed_ports: z.number().int().min(0).max(64),
};

/**
 * What an instance may do through its MCP server. Every field has a default,
 * so a manifest or flag set names only what it grants. The defaults spawn
 * nothing (`spawn: false`, no allowed images, no secrets); the numeric limits
 * default to small values so that `{spawn: true, allowed_images: [...]}` alone
 * is usable. An instance may expose up to `max_exposed_ports` of its own ports.
 */
export const SpawnCapabilities = z
  .object({
    spawn: fields.spawn.default(false),
    max_depth: fields.max_depth.default(1),
    max_children: fields.max_children.default(4),
    allowed_images: fields.allowed_images.default([]),
    max_memory_mb: fields.max_memory_mb.default(512),
    max_vcpus: fields.max_vcpus.default(1),
    allowed_secrets: fields.allowed_secrets.default([]),
    max_exposed_ports: fields.max_exposed_ports.default(4),
  })
  .strict();
/** Capabilities with every default applied. */
export type SpawnCapabilities = z.output<typeof SpawnCapabilities>;
/** Capabilities as written in a manifest or request (any field may be omitted). */
export type SpawnCapabilitiesInput = z.input<typeof SpawnCapabilities>;

/**
 * A grant as sent in `InstanceCreate.capabilities`: only the fields given,
 * no defaults, so that the daemon can lay them over the kit's grant.
 */
export const SpawnCapabilitiesGrant = z.object(fields).partial().strict();
export type SpawnCapabilitiesGrant = z.infer<typeof SpawnCapabilitiesGrant>;

/** The capabilities of an instance nobody granted anything: spawning off. */
export const DEFAULT_CAPABILITIES: SpawnCapabilities = SpawnCapabilities.parse({});
