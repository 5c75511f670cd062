/**
 * @module mcp/tools/_fields
 * Argument schemas shared by the host MCP tools, built from the API's own
 * field schemas so a value the daemon would refuse is refused here first,
 * with the same rule in the JSON Schema the model sees.
 */
import { z } from "zod";
import { ResourceName, SecretName } from "../../api/schema/common.ts";
import { EnvName, GuestDir, GuestUser } from "../../api/schema/tasks.ts";

/** An instance by name (handle) or id. */
export const InstanceRef = z.string().min(1).describe("Instance name (handle) or id, as instance_list shows");

/** A program and its arguments (exec form, no shell). */
export const Command = z
  .array(z.string())
  .min(1, "must name a program")
  .describe('Program and arguments, exec form (no shell): ["ls", "-la", "/"]. For pipes or redirection use ["sh", "-c", "ls | wc -l"]');

/** Environment variables for the process. */
export const Env = z.record(EnvName, z.string()).describe('Environment variables, e.g. {"DEBUG": "1"}. Never put secret values here: name secrets in `secrets` instead');

/** Secret names (values never pass through MCP). */
export const SecretNames = z
  .array(z.union([SecretName, z.literal("*")]))
  .describe('Names of secrets stored with `aegis secret set` to inject as environment variables (["*"] for all). secret_list shows the names; values are never shown or accepted here');

/** An OCI image reference. */
export const ImageRef = z.string().min(1).describe("OCI image (alpine:3.21, ghcr.io/org/img:tag, oci:/path, docker-archive:/file.tar); pulled when not local. Default: the base busybox rootfs");

/** Working directory inside the guest. */
export const Workdir = GuestDir.describe("Working directory inside the VM (absolute path)");

/** User inside the guest. */
export const User = GuestUser.describe("User inside the VM: NAME, UID, NAME:GROUP or UID:GID (default: the image's user, else root)");

/** A new instance's name. */
export const NewName = ResourceName.describe("Name (handle) for the instance: lowercase letters, digits and '-'; also its router hostname NAME.localhost");

/** A guest TCP port. */
export const GuestPort = z.number().int().min(1).max(65535).describe("TCP port inside the VM (1-65535)");
