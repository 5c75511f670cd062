/**
 * @module daemon/instances/stats
 * `GET /v1/instances/:id/stats`: one resource-use sample of a running
 * instance, answered by its harness from the guest kernel's /proc (see
 * guest/harness/stats.ts), plus the VM's configured shape. A paused or
 * stopped instance is never woken for it (a metrics poller must not undo
 * scale-to-zero): it answers precondition_failed.
 */
import { PreconditionFailed } from "../../api/errors.ts";
import type { InstanceStats } from "../../api/schema/stats.ts";
import type { InstancesService } from "./service.ts";

/** Most time the harness gets to answer. */
const STATS_TIMEOUT_MS = 10_000;

/** One sample of instance `ref` (id or handle). */
export async function instanceStats(instances: InstancesService, ref: string): Promise<InstanceStats> {
  const row = instances.row(ref);
  if (row.state !== "running") throw new PreconditionFailed(`instance ${row.handle} is ${row.state}: stats are only read from a running VM`, "resume it first (it is not woken for stats)", { current: row.state, required: ["running"] });
  const rt = await instances.ensureRunning(row.id);
  if (!rt.vm) throw new PreconditionFailed(`instance ${row.handle} has no running VM`, undefined, { current: row.state, required: ["running"] });
  const sample = await rt.vm.channel.call("stats", {}, { timeoutMs: STATS_TIMEOUT_MS });
  return { ...sample, vcpus: row.spec.vcpus, memory_mb: row.spec.memory_mb };
}
