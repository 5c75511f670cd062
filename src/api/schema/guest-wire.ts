/**
 * @module api/schema/guest-wire
 * The constants of the host <-> guest wire that the guest harness needs,
 * free of zod and of every other schema module. The schema modules
 * (control.ts, mcp.ts, tether.ts, pod-network.ts) re-export them, so the
 * host keeps one place to import from; the harness imports them from here,
 * so its boot path never evaluates zod and it never loads the schemas of
 * the daemon's API (instances, tasks, capabilities, network policy) that
 * mcp.ts pulls in.
 *
 * Why it matters (issue 19, TCG, JIT off, per-import marks in the guest):
 * evaluating zod took 90-260 ms and building the first schemas another
 * 85-490 ms; mcp.ts's API schemas 150-290 ms more, for three constants.
 */

/** The name of the virtio-serial port that carries the control channel. */
export const CONTROL_PORT_NAME = "aegis.control";

/** vsock port the harness connects to on the host under libkrun (libkrun maps it to `<runDir>/ctl.sock`). */
export const CONTROL_VSOCK_PORT = 1025;

/** Largest raw chunk of process output carried by one `output` notification (before base64). */
export const OUTPUT_CHUNK_BYTES = 32 * 1024;

/** Largest flow-control window a `run` may ask for. */
export const MAX_OUTPUT_WINDOW = 64 * 1024 * 1024;

/** Most process ids one `processes.end_untracked` request or answer carries. */
export const MAX_TRACKED_PROCESSES = 4096;

/** JSON-RPC error codes used by the harness (the standard ones plus an application range). */
export const RpcErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** The process id is unknown or already exited. */
  noSuchProcess: -32001,
  /** The program could not be started (ENOENT, EACCES...). */
  spawnFailed: -32002,
  /** The id is already in use. */
  duplicateId: -32003,
  /** A wait (`port.wait`) ran out of time. */
  timeout: -32004,
  /** The VM waits for its `setup` request (deferred setup) and cannot run processes yet. */
  notSetUp: -32005,
  /** A filesystem request failed; `data.errno` names the error (ENOENT, EEXIST, ENOTDIR...). */
  fsError: -32006,
} as const;

/** The kernel command line key of a pod network's configuration (pod-network.ts). */
export const PODNET_KEY = "aegis.podnet";

/** Environment variable naming the bridge's unix socket inside the guest. */
export const MCP_BRIDGE_ENV = "AEGIS_MCP_BRIDGE";

/** Where `aegis-mcp-guest` looks for the bridge when `AEGIS_MCP_BRIDGE` is unset (the harness listens there). */
export const MCP_BRIDGE_DEFAULT_PATH = "/run/aegis/mcp.sock";

/** The MCP bridge methods (guest -> host requests), by name; their schemas are mcp.ts's `McpBridgeMethods`. */
export const MCP_BRIDGE_METHOD_NAMES = [
  "mcp.self_info",
  "mcp.instance_spawn",
  "mcp.instance_list",
  "mcp.instance_stop",
  "mcp.expose_port",
  "mcp.unexpose_port",
  "mcp.keepalive_acquire",
  "mcp.keepalive_release",
] as const;

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

/**
 * Largest tether frame, as JSON bytes (the complete frame as aegisd stores
 * and streams it). The bound that matters is on bytes, not characters: a text of
 * control characters is 6 bytes per character as JSON and non-ASCII up to 3,
 * so a character limit alone let one frame take 6 MiB. A frame over the cap
 * is refused: ingress with a 400, egress dropped with a note in the
 * instance log (tether.ts: `frameBytes`).
 */
export const MAX_FRAME_BYTES = 1024 * 1024;
