/**
 * @module shim/stats
 * The task's Stats: one sample from the guest (aegisd's
 * `GET /v1/instances/:id/stats`, read by the harness from the guest
 * kernel's /proc), answered as containerd's cgroups v2 `Metrics`
 * (`io.containerd.cgroups.v2.Metrics` in a protobuf Any), the type
 * `ctr task metrics` and the CRI plugin of containerd 1.6 decode for a
 * cgroup v2 host, as runc's shim answers there.
 *
 * A VM is one container, so the machine's figures are the container's:
 *   - memory.usage = MemTotal - MemAvailable; usage_limit = the spec's
 *     memory limit when it set one (the VM has that plus the guest
 *     overhead), else the guest's MemTotal; file = Cached; swap from
 *     SwapTotal/SwapFree;
 *   - cpu usage/user/system (µs) from the guest's /proc/stat since boot;
 *   - pids.current = the guest's user processes, pids.limit = the spec's
 *     pids limit (0: none).
 * A paused task answers its last sample (a frozen VM's figures do not
 * move, and it is never woken for stats), or FailedPrecondition before
 * the first one.
 */
import type { InstanceStats } from "../api/schema/stats.ts";
import { any, type Msg } from "./proto/index.ts";

/** The type URL of the answer. */
export const METRICS_TYPE = "io.containerd.cgroups.v2.Metrics";

export type { InstanceStats };

/** What the spec limited (bytes; undefined: no limit). */
export interface SpecLimits {
  memoryBytes?: number;
  pids?: number;
}

/** The cgroups v2 Metrics message for a sample. */
export function metricsOf(s: InstanceStats, limits: SpecLimits): Msg {
  return {
    pids: { current: s.processes, limit: limits.pids ?? 0 },
    cpu: { usage_usec: s.cpu_usage_usec, user_usec: s.cpu_user_usec, system_usec: s.cpu_system_usec },
    memory: {
      usage: Math.max(0, s.mem_total_bytes - s.mem_available_bytes),
      usage_limit: limits.memoryBytes ?? s.mem_total_bytes,
      file: s.mem_cached_bytes,
      swap_usage: Math.max(0, s.swap_total_bytes - s.swap_free_bytes),
      swap_limit: s.swap_total_bytes,
    },
  };
}

/** The StatsResponse for a sample. */
export function statsResponse(s: InstanceStats, limits: SpecLimits): Msg {
  return { stats: any(METRICS_TYPE, metricsOf(s, limits)) };
}
