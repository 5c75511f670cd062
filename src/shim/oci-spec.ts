/**
 * @module shim/oci-spec
 * What the shim takes from a bundle's OCI runtime spec (`config.json`) and
 * from an exec's process spec: the process (args, env, cwd, user, terminal)
 * and the resource limits that size the VM.
 *
 * Sizing (a VM is not a cgroup, so the limits become the machine's shape):
 *   - memory: `linux.resources.memory.limit` plus {@link GUEST_OVERHEAD_MB}
 *     for the guest kernel and harness, rounded up to whole MiB (at least
 *     256 MiB); without a limit, aegisd's default (512 MiB);
 *   - CPUs: `ceil(cpu.quota / cpu.period)` when both are set (`--cpus 1.5`
 *     gives 2 vCPUs), else aegisd's default (1).
 * The user is passed as `uid:gid` (OCI gives numbers; the guest needs no
 * /etc/passwd entry for them). Anything else in the spec (namespaces,
 * seccomp, capabilities) is the VM boundary's business and is not applied
 * inside the guest in this version; bind `mounts` are made by
 * bind-mounts.ts. `user.additionalGids` (the CRI's supplementalGroups
 * among them) are added to the supplementary groups the harness resolves
 * for the uid in the image's /etc/group.
 */
import { z } from "zod";
import { OciMount } from "./bind-mounts.ts";

/** Memory the guest kernel and harness need on top of the container's limit. */
export const GUEST_OVERHEAD_MB = 128;
const MIB = 1024 * 1024;

/** The OCI `process` object (only the fields the shim uses; the rest is ignored). */
export const OciProcess = z.object({
  terminal: z.boolean().optional(),
  args: z.array(z.string()).min(1, "process.args must name a program"),
  env: z.array(z.string()).optional(),
  cwd: z.string().startsWith("/", "process.cwd must be absolute").optional(),
  user: z.object({ uid: z.number().int().min(0), gid: z.number().int().min(0), additionalGids: z.array(z.number().int().min(0)).max(64, "at most 64 additionalGids") }).partial().optional(),
  consoleSize: z.object({ height: z.number().int(), width: z.number().int() }).optional(),
});
export type OciProcess = z.infer<typeof OciProcess>;

/** The OCI runtime spec fields the shim uses. */
export const OciSpec = z.object({
  process: OciProcess,
  hostname: z.string().optional(),
  mounts: z.array(OciMount).optional(),
  linux: z
    .object({
      resources: z
        .object({
          memory: z.object({ limit: z.number().int().optional() }).optional(),
          cpu: z.object({ quota: z.number().int().optional(), period: z.number().int().optional() }).optional(),
          pids: z.object({ limit: z.number().int().optional() }).optional(),
        })
        .optional(),
    })
    .optional(),
});
export type OciSpec = z.infer<typeof OciSpec>;

/** A process as aegisd's exec session takes it. */
export interface GuestProcessSpec {
  command: string[];
  env: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Extra supplementary gids (OCI additionalGids). */
  groups?: number[];
  terminal: boolean;
  /** Chroot into this directory of the VM's rootfs (a container of a pod VM, shim/sandbox.ts). */
  rootSubdir?: string;
}

/** Parse `json` (config.json text or an exec's process spec) with `schema`, naming `what` in errors. */
export function parseSpec<S extends z.ZodType>(schema: S, json: string, what: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(`${what} is not a usable OCI spec: ${r.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`).join("; ")}`);
  return r.data;
}

/** The process to run for an OCI process object. */
export function guestProcess(p: OciProcess): GuestProcessSpec {
  const env: Record<string, string> = {};
  for (const entry of p.env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const uid = p.user?.uid ?? 0;
  const gid = p.user?.gid ?? 0;
  const groups = p.user?.additionalGids ?? [];
  return {
    command: p.args,
    env,
    ...(p.cwd && p.cwd !== "/" ? { cwd: p.cwd } : {}),
    ...(uid !== 0 || gid !== 0 || groups.length > 0 ? { user: `${uid}:${gid}` } : {}),
    ...(groups.length > 0 ? { groups } : {}),
    terminal: p.terminal === true,
  };
}

/** The VM shape for a spec's limits (undefined fields: aegisd's defaults). */
export function vmShape(spec: OciSpec): { memory_mb?: number; vcpus?: number } {
  const limit = spec.linux?.resources?.memory?.limit;
  const cpu = spec.linux?.resources?.cpu;
  const out: { memory_mb?: number; vcpus?: number } = {};
  if (limit !== undefined && limit > 0) out.memory_mb = Math.max(256, Math.ceil(limit / MIB) + GUEST_OVERHEAD_MB);
  if (cpu?.quota !== undefined && cpu.period !== undefined && cpu.quota > 0 && cpu.period > 0) out.vcpus = Math.max(1, Math.ceil(cpu.quota / cpu.period));
  return out;
}
