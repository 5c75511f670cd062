/**
 * @module cli/commands/instance/_capabilities
 * The spawn-capability flags of `aegis instance start` (what the instance's
 * MCP server, `aegis-mcp-guest`, may do) and their translation into
 * `InstanceCreate.capabilities`. Only the flags given are sent, so a kit's
 * `instance.capabilities` supplies the rest; unset fields take the defaults
 * of api/schema/capabilities.ts (no spawning, max_depth 1, max_children 4,
 * 512 MiB, 1 vCPU, no secrets, 4 exposed ports).
 */
import type { SpawnCapabilitiesGrant } from "../../../api/schema/capabilities.ts";
import type { AegisArgsDef, ParsedCommandLine } from "../../argv.ts";
import { UsageError } from "../../errors.ts";

/** The flags. */
export const capabilityArgs = {
  "allow-spawn": { type: "boolean", description: "Let the instance start child instances through its MCP server (aegis-mcp-guest)" },
  "max-children": { type: "string", valueHint: "N", description: "Children it may have at once (default 4)" },
  "max-depth": { type: "string", valueHint: "N", description: "Deepest nesting: 1 allows children but no grandchildren (default 1)" },
  "allow-image": { type: "string", valueHint: "PATTERN", repeatable: true, description: "Image a child may run: a reference, a prefix ending in *, or @base for the base rootfs (repeatable)" },
} as const satisfies AegisArgsDef;

function whole(flag: string, value: string | boolean | undefined, max: number): number | undefined {
  if (value === undefined || typeof value === "boolean") return undefined;
  if (!/^\d+$/.test(value) || Number(value) > max) throw new UsageError(`invalid --${flag} value "${value}": expected a whole number from 0 to ${max}`);
  return Number(value);
}

/** The grant the flags make, or undefined when none was given. */
export function capabilitiesFromFlags(cl: ParsedCommandLine): SpawnCapabilitiesGrant | undefined {
  const grant: SpawnCapabilitiesGrant = {};
  if (typeof cl.values["allow-spawn"] === "boolean") grant.spawn = cl.values["allow-spawn"];
  const children = whole("max-children", cl.values["max-children"], 256);
  if (children !== undefined) grant.max_children = children;
  const depth = whole("max-depth", cl.values["max-depth"], 16);
  if (depth !== undefined) grant.max_depth = depth;
  if (cl.multi["allow-image"]) grant.allowed_images = cl.multi["allow-image"];
  return Object.keys(grant).length > 0 ? grant : undefined;
}
