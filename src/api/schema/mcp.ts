/**
 * @module api/schema/mcp
 * The MCP bridge: what `aegis-mcp-guest` (the MCP server inside every guest)
 * asks the host, and the spawn capabilities the host checks those requests
 * against. Guest and host both validate with these schemas.
 *
 * Transport. Each method is a JSON-RPC 2.0 request, guest -> host. Inside the
 * guest, `aegis-mcp-guest` sends it as one NDJSON line to the unix socket
 * named by `AEGIS_MCP_BRIDGE` (default {@link MCP_BRIDGE_DEFAULT_PATH}); the
 * harness serves that socket and relays each request unchanged (fresh id) as a
 * guest -> host request on the control channel, then relays the answer back
 * with the caller's id. One connection may carry many requests; answers are
 * matched by id and may come in any order.
 *
 * Identity. No request names its caller: the host knows which instance owns
 * the control channel, so a guest can never act as another instance. The
 * capabilities come from the kit manifest or `instance start` flags and are
 * stored by the daemon, never taken from the guest.
 *
 * Refusals. A denied or failed request is a JSON-RPC error whose `message` is
 * the user-facing sentence (it becomes the MCP tool error text) and whose
 * `data` may carry `{code, hint}` ({@link McpBridgeErrorData}).
 */
import { z } from "zod";
import { SpawnCapabilities } from "./capabilities.ts";
import { Port, ResourceName, SecretName } from "./common.ts";
import { InstanceState } from "./instances.ts";
import { EnvName } from "./tasks.ts";

import type { MCP_BRIDGE_METHOD_NAMES } from "./guest-wire.ts";

// The bridge's zod-free constants live in guest-wire.ts (the harness relays bridge lines without these schemas).
export { MCP_BRIDGE_DEFAULT_PATH, MCP_BRIDGE_ENV, McpBridgeErrorCode } from "./guest-wire.ts";

/** Longest keepalive a guest may hold in one acquire, in seconds (one hour). */
export const KEEPALIVE_MAX_S = 3600;

export { BASE_IMAGE, DEFAULT_CAPABILITIES, ImagePattern, SpawnCapabilities, SpawnCapabilitiesGrant } from "./capabilities.ts";
export type { SpawnCapabilitiesInput } from "./capabilities.ts";

/** One exposed port as a guest sees it. `url`: where the host reaches it through the router. */
export const McpEndpoint = z.object({
  guest_port: z.number().int(),
  public_port: z.number().int().nullable(),
  url: z.string().nullable(),
  /** False when the VM does not forward the port yet (exposed while running): it becomes reachable at the next boot. */
  reachable: z.boolean().optional(),
});
export type McpEndpoint = z.infer<typeof McpEndpoint>;

/** A child instance as its parent sees it (secret names only, never values). */
export const McpChild = z.object({
  id: z.string(),
  handle: z.string(),
  state: InstanceState,
  image: z.string().nullable(),
  command: z.array(z.string()),
  expose: z.array(McpEndpoint),
  memory_mb: z.number().int(),
  vcpus: z.number().int(),
  secrets: z.array(z.string()),
  created_at: z.string(),
});
export type McpChild = z.infer<typeof McpChild>;

/** Params of requests that take none. */
export const McpNoParams = z.object({}).strict();

/** `mcp.self_info` result: the calling instance. */
export const McpSelfInfo = z.object({
  id: z.string(),
  handle: z.string(),
  image: z.string().nullable(),
  parent_id: z.string().nullable(),
  depth: z.number().int(),
  expose: z.array(McpEndpoint),
  children: z.number().int(),
  capabilities: SpawnCapabilities,
  keepalive_until: z.string().nullable(),
});

/** `mcp.instance_spawn` params. Unset fields take the daemon's defaults (then the capabilities are checked). */
export const McpSpawnParams = z
  .object({
    image: z.string().min(1).max(512).optional().describe("Image reference, e.g. busybox or python:3.12-alpine; omitted: the base busybox rootfs (allowed by the pattern @base)"),
    command: z.array(z.string()).min(1).optional().describe("Program and arguments (default: the image's entrypoint/cmd)"),
    name: ResourceName.optional().describe("Handle for the child (lowercase letters, digits, '-')"),
    expose: z.array(Port).max(64).optional().describe("Guest ports of the child to expose through the host router"),
    memory_mb: z.number().int().min(128).max(65536).optional().describe("Memory in MiB"),
    vcpus: z.number().int().min(1).max(64).optional().describe("Virtual CPUs"),
    secrets: z.array(SecretName).optional().describe("Names of secrets to pass on (only those this instance may pass)"),
    env: z.record(EnvName, z.string()).optional().describe("Extra environment variables"),
  })
  .strict();

/** `mcp.instance_list` result: this instance's own children. */
export const McpChildList = z.object({ instances: z.array(McpChild) });

/** `mcp.instance_stop` params: a child by id or handle. */
export const McpStopParams = z
  .object({
    instance: z.string().min(1).max(128).describe("Id or handle of one of this instance's children"),
    delete: z.boolean().optional().describe("Also delete it, which frees its max_children slot (default false)"),
  })
  .strict();

/** `mcp.instance_stop` result. */
export const McpStopResult = z.object({ id: z.string(), handle: z.string(), deleted: z.boolean() });

/** `mcp.expose_port` / `mcp.unexpose_port` params: one of this instance's guest ports. */
export const McpPortParams = z.object({ port: Port.describe("TCP port inside this VM") }).strict();

/** `mcp.keepalive_acquire` params. */
export const McpKeepaliveParams = z
  .object({
    seconds: z.number().int().min(1).max(KEEPALIVE_MAX_S).describe(`How long to hold off the idle pause (1-${KEEPALIVE_MAX_S} s)`),
  })
  .strict();

/** `mcp.keepalive_acquire` result: the idle pause is held off until this ISO-8601 time. */
export const McpKeepaliveResult = z.object({ until: z.string() });

/** Result of requests that only succeed. */
export const McpOk = z.object({ ok: z.literal(true) });

/**
 * Every bridge method with its param and result schemas. One instance holds
 * at most one keepalive: acquiring again replaces its deadline, releasing
 * clears it (and succeeds when there is none).
 */
export const McpBridgeMethods = {
  "mcp.self_info": { params: McpNoParams, result: McpSelfInfo },
  "mcp.instance_spawn": { params: McpSpawnParams, result: McpChild },
  "mcp.instance_list": { params: McpNoParams, result: McpChildList },
  "mcp.instance_stop": { params: McpStopParams, result: McpStopResult },
  "mcp.expose_port": { params: McpPortParams, result: McpEndpoint },
  "mcp.unexpose_port": { params: McpPortParams, result: McpOk },
  "mcp.keepalive_acquire": { params: McpKeepaliveParams, result: McpKeepaliveResult },
  "mcp.keepalive_release": { params: McpNoParams, result: McpOk },
} as const;

/** A bridge method name. */
export type McpBridgeMethod = keyof typeof McpBridgeMethods;

/** Request methods the host serves (guest -> host, see control.ts), with their param and result schemas. */
export const GuestRequests = McpBridgeMethods;

/** A guest -> host request method name. */
export type GuestRequestMethod = keyof typeof GuestRequests;

// guest-wire.ts names the same methods for the harness: a method added here without it fails to compile.
type SameNames<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const bridgeNamesMatch: SameNames<McpBridgeMethod, (typeof MCP_BRIDGE_METHOD_NAMES)[number]> = true;
void bridgeNamesMatch;
/** Params of a bridge method. */
export type McpBridgeParams<M extends McpBridgeMethod> = z.output<(typeof McpBridgeMethods)[M]["params"]>;
/** Result of a bridge method. */
export type McpBridgeResult<M extends McpBridgeMethod> = z.output<(typeof McpBridgeMethods)[M]["result"]>;

/** `data` of a bridge JSON-RPC error: the daemon's error code (`invalid_request`, `not_found`...) and a remedy. */
export const McpBridgeErrorData = z.object({
  code: z.string().optional(),
  hint: z.string().optional(),
});
