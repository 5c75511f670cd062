/**
 * @module mcp/tools/_view
 * What the tools report about an instance: the API record minus the
 * bookkeeping a model does not need, plus its exposed URLs.
 */
import type { AegisClient } from "../../api/client.ts";
import { fromEnvelope } from "../../api/errors.ts";
import type { Instance } from "../../api/schema/instances.ts";
import { endpoints } from "../endpoints.ts";

/** An instance as the tools report it. */
export function instanceView(inst: Instance, routerUrl: string): Record<string, unknown> {
  return {
    id: inst.id,
    name: inst.handle,
    state: inst.state,
    image: inst.image,
    kit: inst.kit,
    command: inst.command,
    workdir: inst.workdir,
    user: inst.user,
    secrets: inst.secrets,
    env_keys: inst.env_keys,
    exposed: endpoints(inst, routerUrl),
    workspace: inst.workspace,
    memory_mb: inst.memory_mb,
    vcpus: inst.vcpus,
    pause_after_s: inst.pause_after_s,
    stop_after_s: inst.stop_after_s,
    exit_code: inst.exit_code,
    error: inst.error,
    has_snapshot: inst.has_snapshot,
    parent_id: inst.parent_id,
    created_at: inst.created_at,
    started_at: inst.started_at,
    last_active_at: inst.last_active_at,
  };
}

/** The daemon's router origin. */
export async function routerUrl(client: AegisClient): Promise<string> {
  return (await client.status()).router_url;
}

/** Pull `ref` unless it is already in the local store; the digest to run. */
export async function ensureImage(client: AegisClient, ref: string): Promise<string> {
  const local = await client.findImage(ref);
  if (local) return local.digest;
  for await (const event of client.pullImage(ref)) {
    if (event.type === "done") return event.image.digest;
    if (event.type === "error") throw fromEnvelope({ error: event.error });
  }
  throw new Error(`the pull of ${ref} ended without a result`);
}
