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
import { Port, ResourceName, SecretName } from "./common.ts";
import { InstanceState } from "./instances.ts";
import { EnvName } from "./tasks.ts";

/** Environment variable naming the bridge's unix socket inside the guest. */
export const MCP_BRIDGE_ENV = "AEGIS_MCP_BRIDGE";

/** Where `aegis-mcp-guest` looks for the bridge when `AEGIS_MCP_BRIDGE` is unset. */
export const MCP_BRIDGE_DEFAULT_PATH = "/run/aegis/mcp.sock";

/** Longest keepalive a guest may hold in one acquire, in seconds (one hour). */
export const KEEPALIVE_MAX_S = 3600;

/**
 * An allowed-image entry: `*` (any registry image), a prefix glob ending in
 * `*` (`docker.io/library/*`, matched against the canonical name), or an exact
 * reference (`alpine`, `python:3.12-alpine`; without a tag it allows every tag
 * of that repository).
 */
export const ImagePattern = z
  .string()
  .min(1, "must not be empty")
  .max(512)
  .refine((s) => !/\s/.test(s), "must not contain whitespace")
  .refine((s) => !s.slice(0, -1).includes("*"), "may contain '*' only at the end");

/**
 * What an instance may do through its MCP server. Every field has a default,
 * so a manifest or flag set names only what it grants. The defaults spawn
 * nothing (`spawn: false`, no allowed images, no secrets); the numeric limits
 * default to small values so that `{spawn: true, allowed_images: [...]}` alone
 * is usable. An instance may expose up to `max_exposed_ports` of its own ports.
 */
export const SpawnCapabilities = z
  .object({
    /** May this instance start child VMs at all. */
    spawn: z.boolean().default(false),
    /** Deepest allowed nesting: a top-level instance is depth 0, its children depth 1. */
    max_depth: z.number().int().min(0).max(16).default(1),
    /** Children this instance may have at once (stopped ones count until deleted). */
    max_children: z.number().int().min(0).max(256).default(4),
    /** Images a child may run ({@link ImagePattern}). */
    allowed_images: z.array(ImagePattern).default([]),
    /** Largest memory a child may ask for, in MiB. */
    max_memory_mb: z.number().int().min(0).max(65536).default(512),
    /** Largest vCPU count a child may ask for. */
    max_vcpus: z.number().int().min(0).max(64).default(1),
    /** Secret names this instance may pass to its children. */
    allowed_secrets: z.array(SecretName).default([]),
    /** Ports this instance (and each child, at spawn) may have exposed at once. */
    max_exposed_ports: z.number().int().min(0).max(64).default(4),
  })
  .strict();
/** Capabilities with every default applied. */
export type SpawnCapabilities = z.output<typeof SpawnCapabilities>;
/** Capabilities as written in a manifest or request (any field may be omitted). */
export type SpawnCapabilitiesInput = z.input<typeof SpawnCapabilities>;

/** The capabilities of an instance nobody granted anything: spawning off. */
export const DEFAULT_CAPABILITIES: SpawnCapabilities = SpawnCapabilities.parse({});

/** One exposed port as a guest sees it. `url`: where the host reaches it through the router. */
export const McpEndpoint = z.object({
  guest_port: z.number().int(),
  public_port: z.number().int().nullable(),
  url: z.string().nullable(),
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
    image: z.string().min(1).max(512).describe("Image reference, e.g. busybox or python:3.12-alpine"),
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
/** Params of a bridge method. */
export type McpBridgeParams<M extends McpBridgeMethod> = z.output<(typeof McpBridgeMethods)[M]["params"]>;
/** Result of a bridge method. */
export type McpBridgeResult<M extends McpBridgeMethod> = z.output<(typeof McpBridgeMethods)[M]["result"]>;

/** JSON-RPC error codes of the bridge (the standard ones plus an application range). */
export const McpBridgeErrorCode = {
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** A capability or ownership check refused the request; nothing was changed. */
  denied: -32010,
  /** The named child, port or image does not exist (or is not this instance's). */
  notFound: -32011,
  /** The request conflicts with current state (name taken, wrong lifecycle state). */
  conflict: -32012,
  /** The harness could not reach the host (control channel down, daemon gone). */
  unavailable: -32013,
} as const;

/** `data` of a bridge JSON-RPC error: the daemon's error code (`invalid_request`, `not_found`...) and a remedy. */
export const McpBridgeErrorData = z.object({
  code: z.string().optional(),
  hint: z.string().optional(),
});
