/**
 * @module api/schema/stats
 * Resource-use samples of a guest: the harness's `stats` result and, with
 * the VM's shape, aegisd's `GET /v1/instances/:id/stats` answer.
 */
import { z } from "zod";

/**
 * `stats` result: the guest's resource use, read by the harness from the
 * guest kernel's /proc (so it works whatever the rootfs holds): memory from
 * /proc/meminfo, CPU time from /proc/stat (all CPUs and each one), and the
 * number of user processes (kernel threads, the harness and the guest init
 * not counted). Sizes are bytes, times microseconds.
 */
export const GuestStats = z.object({
  mem_total_bytes: z.number().nonnegative(),
  mem_available_bytes: z.number().nonnegative(),
  mem_cached_bytes: z.number().nonnegative(),
  swap_total_bytes: z.number().nonnegative(),
  swap_free_bytes: z.number().nonnegative(),
  cpu_user_usec: z.number().nonnegative(),
  cpu_system_usec: z.number().nonnegative(),
  cpu_usage_usec: z.number().nonnegative(),
  cpu_per_cpu_usec: z.array(z.number().nonnegative()).max(1024),
  processes: z.number().int().nonnegative(),
  uptime_ms: z.number().nonnegative(),
}).strict();
export type GuestStats = z.infer<typeof GuestStats>;

/** `GET /v1/instances/:id/stats`: a guest sample and the VM's shape. */
export const InstanceStats = GuestStats.extend({ vcpus: z.number().int().positive(), memory_mb: z.number().int().positive() }).strict();
export type InstanceStats = z.infer<typeof InstanceStats>;
