/**
 * @module daemon/instances/view
 * The API view of a stored instance (`Instance`): its spec and lifecycle
 * columns, the host ports its running VM forwards, and whether a memory
 * snapshot is waiting. Never secret values: only their names.
 */
import type { Instance } from "../../api/schema/instances.ts";
import type { InstanceRow } from "../registry/instances.ts";

/** Build the view; `hostPorts` is null when no VM runs. */
export function instanceView(row: InstanceRow, hostPorts: Map<number, number> | null, hasSnapshot: boolean): Instance {
  const { spec } = row;
  return {
    id: row.id,
    handle: row.handle,
    state: row.state,
    image: spec.image,
    kit: spec.kit,
    app_id: spec.app_id,
    release_id: spec.release_id,
    command: spec.command,
    workdir: spec.workdir,
    user: spec.user,
    secrets: spec.secrets,
    env_keys: Object.keys(spec.env),
    expose: spec.expose.map((e) => ({ ...e, host_port: hostPorts?.get(e.guest_port) ?? null })),
    workspace: spec.workspace,
    memory_mb: spec.memory_mb,
    vcpus: spec.vcpus,
    pause_after_s: spec.pause_after_s,
    stop_after_s: spec.stop_after_s,
    exit_code: row.exit_code,
    error: row.error,
    has_snapshot: hasSnapshot,
    created_at: row.created_at,
    started_at: row.started_at,
    last_active_at: row.last_active_at,
    parent_id: spec.parent_id,
    depth: spec.depth,
    capabilities: spec.capabilities,
    network: spec.network,
    ...(spec.netns_path ? { netns_path: spec.netns_path } : {}),
    e2b: spec.e2b ? { template: spec.e2b.template, metadata: spec.e2b.metadata, timeout_s: spec.e2b.timeout_s, end_at: spec.e2b.end_at, auto_pause: spec.e2b.auto_pause } : null,
  };
}
