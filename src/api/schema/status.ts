/**
 * @module api/schema/status
 * `GET /v1/status`.
 */
import { z } from "zod";

/** What a VM backend can do (the doctor's three capability lines). */
export const Capabilities = z.object({
  pause_resume: z.boolean(),
  memory_snapshots: z.boolean(),
  boot_from_disk_layers: z.boolean(),
});

/** One kit daemon (e.g. aegis-gateway) as supervised by aegisd. */
export const KitDaemonStatus = z.object({
  name: z.string(),
  kit: z.string(),
  state: z.enum(["running", "no-config", "disabled", "restarting", "stopped"]),
  pid: z.number().int().nullable(),
  restarts: z.number().int(),
  config: z.string().nullable(),
  last_exit: z.number().int().nullable(),
});

/** Daemon status. */
export const Status = z.object({
  status: z.literal("running"),
  version: z.string(),
  pid: z.number().int(),
  home: z.string(),
  backend: z.string(),
  backend_reason: z.string(),
  accel: z.string(),
  capabilities: Capabilities,
  kits_installed: z.number().int(),
  /** Where `aegis run --expose` / `app serve` are reachable. */
  router_url: z.string(),
  daemons: z.array(KitDaemonStatus),
});
export type Status = z.infer<typeof Status>;
