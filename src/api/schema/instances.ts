/**
 * @module api/schema/instances
 * Instances: long-lived VMs (serve mode, `aegis instance ...`, agents) with a
 * lifecycle `starting -> running -> paused -> stopped` (+ `failed`), exposed
 * ports behind the router, and an idle policy.
 */
import { z } from "zod";
import { SpawnCapabilities, SpawnCapabilitiesGrant } from "./capabilities.ts";
import { NetworkPolicySchema, NetworkPolicyView, ResourceName, SecretName } from "./common.ts";
import { EnvName, GuestDir, GuestUser, ProcessFields } from "./tasks.ts";

/** `GUEST` or `PUBLIC:GUEST` (a raw TCP listener on 127.0.0.1:PUBLIC). */
export const ExposeSpec = z
  .string()
  .regex(/^(\d{1,5}:)?\d{1,5}$/, "must be PORT or PUBLIC:GUEST")
  .refine((s) => s.split(":").every((p) => Number(p) >= 1 && Number(p) <= 65535), "ports must be 1-65535");

/** Body of `POST /v1/instances`. Unset fields come from the kit (when `kit` is given), then defaults. */
export const InstanceCreate = z
  .object({
    name: ResourceName.optional(),
    image: z.string().min(1).optional(),
    kit: ResourceName.optional(),
    /** Serve this app's latest release (`aegis app serve`). */
    app: z.string().min(1).optional(),
    ...ProcessFields,
    secrets: z.array(z.union([SecretName, z.literal("*")])).optional(),
    env: z.record(EnvName, z.string()).optional(),
    expose: z.array(ExposeSpec).optional(),
    /** A workspace name (under AEGIS_HOME/data/workspaces) or an absolute host path. */
    workspace: z.string().min(1).optional(),
    /**
     * An absolute host directory booted as the root filesystem (read-only to
     * the guest; its writes go to the instance's overlay). Used by the
     * containerd shim for a bundle's rootfs. Excludes image, app, kit and
     * workspace; without a command, the instance runs no main process and
     * stays up until stopped (the shim runs the container's processes by exec).
     */
    rootfs_dir: z.string().startsWith("/", "must be an absolute path").optional(),
    memory_mb: z.number().int().min(128).max(65536).optional(),
    vcpus: z.number().int().min(1).max(64).optional(),
    /** Seconds without activity before pausing (0 = never); daemon default when absent. */
    pause_after_s: z.number().int().min(0).optional(),
    /** Seconds paused without activity before stopping (0 = never); daemon default when absent. */
    stop_after_s: z.number().int().min(0).optional(),
    /** What the instance's MCP server may do; laid field by field over the kit's `instance.capabilities`. */
    capabilities: SpawnCapabilitiesGrant.optional(),
    /** Egress policy (`--allow`, `--deny`, `--no-network`); the default (public internet only) when absent. */
    network: NetworkPolicySchema.optional(),
    /**
     * Pod network mode (vmm/network/pod.ts): the absolute path of an existing
     * network namespace (`/var/run/netns/cni-...`, `/proc/PID/ns/net`) that
     * CNI prepared; the VM takes its interface's IPv4 address, MAC, routes
     * and DNS, and a server in the guest answers on that address. Needs
     * aegisd as root; excludes `network` (the pod's policy is CNI's) and
     * `expose` (no port forwards: use the pod IP). The namespace stays the
     * caller's: aegisd never deletes it.
     */
    netns_path: z.string().startsWith("/", "must be an absolute path").optional(),
  })
  .strict();
export type InstanceCreate = z.infer<typeof InstanceCreate>;

/** Instance states. */
export const InstanceState = z.enum(["starting", "running", "paused", "stopping", "stopped", "failed"]);
export type InstanceState = z.infer<typeof InstanceState>;

/** One exposed port. `host_port` is where QEMU forwards it while the VM runs. */
export const ExposedPort = z.object({
  guest_port: z.number().int(),
  public_port: z.number().int().nullable(),
  host_port: z.number().int().nullable(),
});
export type ExposedPort = z.infer<typeof ExposedPort>;

/** An instance as reported by the API (never secret values: only their names). */
export const Instance = z.object({
  id: z.string(),
  handle: z.string(),
  state: InstanceState,
  image: z.string().nullable(),
  kit: z.string().nullable(),
  app_id: z.string().nullable(),
  release_id: z.string().nullable(),
  command: z.array(z.string()),
  /** Working directory in the guest (null: /). */
  workdir: z.string().nullable(),
  /** User in the guest (null: root). */
  user: z.string().nullable(),
  secrets: z.array(z.string()),
  env_keys: z.array(z.string()),
  expose: z.array(ExposedPort),
  workspace: z.string().nullable(),
  memory_mb: z.number().int(),
  vcpus: z.number().int(),
  pause_after_s: z.number().int(),
  stop_after_s: z.number().int(),
  exit_code: z.number().int().nullable(),
  error: z.string().nullable(),
  has_snapshot: z.boolean(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  last_active_at: z.string().nullable(),
  /** The instance that spawned this one (through its MCP server); null at top level. */
  parent_id: z.string().nullable(),
  /** 0 at top level. */
  depth: z.number().int(),
  capabilities: SpawnCapabilities,
  /** Egress policy: `--no-network` (`none`) or the ordered rules over the default. */
  network: NetworkPolicyView,
  /** The pod network namespace the VM's network is (InstanceCreate.netns_path); absent otherwise. */
  netns_path: z.string().optional(),
  /** For an E2B sandbox (created through the E2B API): its template, metadata and lifetime; null otherwise. */
  e2b: z
    .object({ template: z.string(), metadata: z.record(z.string(), z.string()), timeout_s: z.number().int(), end_at: z.string(), auto_pause: z.boolean() })
    .nullable(),
});
export type Instance = z.infer<typeof Instance>;

/** `GET /v1/instances`. */
export const InstanceList = z.object({ instances: z.array(Instance) });

/** Body of `POST /v1/instances/{id}/exec`. */
export const ExecRequest = z
  .object({
    command: z.array(z.string()).min(1, "must name a program"),
    env: z.record(EnvName, z.string()).default({}),
    /** Working directory; the instance's when absent. */
    cwd: GuestDir.optional(),
    /** User; the instance's when absent. */
    user: GuestUser.optional(),
    /**
     * Run chrooted into this directory of the instance's root filesystem
     * (relative, no `..`): a container of a containerd pod VM, whose rootfs
     * holds one directory per container (docs/containerd-shim.md).
     */
    root_subdir: z.string().regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/, "must be a relative path without ..").max(512).optional(),
    /** Extra supplementary gids on top of the user's own (OCI `user.additionalGids`, the containerd shim's). */
    groups: z.array(z.number().int().min(0).max(4_294_967_294)).max(64, "at most 64 extra groups").optional(),
    /** Kill the process (SIGKILL) after this many seconds; the exit record then says `timed_out`. No limit when absent. */
    timeout_s: z.number().int().min(1, "must be at least 1 second").max(86_400, "must be at most 86400 seconds (one day)").optional(),
  })
  .strict();

/** Body of `POST /v1/instances/{id}/expose`: serve this guest port through the router. */
export const ExposeRequest = z.object({ port: z.number().int().min(1, "ports must be 1-65535").max(65535, "ports must be 1-65535") }).strict();

/** Lines of the exec NDJSON stream: output chunks, then one exit record. */
export const ExecLine = z.discriminatedUnion("type", [
  z.object({ type: z.literal("output"), stream: z.enum(["stdout", "stderr"]), text: z.string().optional(), data: z.string().optional() }),
  z.object({ type: z.literal("exit"), code: z.number().int(), signal: z.string().nullable(), timed_out: z.boolean().optional() }),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }) }),
]);
export type ExecLine = z.infer<typeof ExecLine>;
