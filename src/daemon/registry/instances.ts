/**
 * @module daemon/registry/instances
 * Rows of `instances`. The launch spec (image, command, ports, secrets'
 * names, workspace, sizes, idle policy) is stored as one JSON document; the
 * lifecycle columns are separate so state changes are single-column updates.
 *
 * Lineage and capabilities (issue 8) live in the spec too, not in columns:
 * `parent_id` (the instance whose MCP server spawned this one, null for a
 * top-level instance), `depth` (0 top-level) and `capabilities` (what this
 * instance's MCP server may do, defaults applied). They are fixed at creation
 * like the rest of the spec, children are found by scanning the (small)
 * table, and rows written before they existed read as top-level instances
 * with {@link DEFAULT_CAPABILITIES}, so no migration is needed. `expose` is
 * the one spec field that changes after creation (`expose_port`).
 */
import { DEFAULT_NETWORK, type NetworkPolicy } from "../../api/network-policy.ts";
import type { Database } from "bun:sqlite";
import { DEFAULT_CAPABILITIES, type SpawnCapabilities } from "../../api/schema/capabilities.ts";
import type { InstanceState } from "../../api/schema/instances.ts";
import type { EventBus } from "../events.ts";

/** The immutable part of an instance (what it was created with, after kit/app defaults). */
export interface InstanceSpec {
  image: string | null;
  kit: string | null;
  app_id: string | null;
  release_id: string | null;
  /** The resolved argv (the image's Entrypoint + Cmd under the request's). */
  command: string[];
  /** Working directory in the guest (null: `/`). */
  workdir: string | null;
  /** User in the guest (null: root). */
  user: string | null;
  secrets: string[];
  env: Record<string, string>;
  expose: { guest_port: number; public_port: number | null }[];
  workspace: string | null;
  /** Host directory booted as the root filesystem (the containerd shim's bundle rootfs); absent otherwise. */
  rootfs_dir?: string | null;
  /** The pod network namespace that is the VM's network (VmSpec.netnsPath); absent otherwise. */
  netns_path?: string;
  memory_mb: number;
  vcpus: number;
  pause_after_s: number;
  stop_after_s: number;
  /** The instance that spawned this one through its MCP server; null at top level. */
  parent_id: string | null;
  /** 0 for a top-level instance, parent's depth + 1 for a child. */
  depth: number;
  /** What this instance's MCP server may do (defaults applied). */
  capabilities: SpawnCapabilities;
  /** Egress policy (api/network-policy.ts); rows stored before policies existed get the default. */
  network: NetworkPolicy;
  /** Set when the instance is an E2B sandbox (daemon/e2b/): its template, metadata and lifetime. */
  e2b?: E2bSandboxSpec;
}

/** The E2B side of a sandbox instance. The envd access token is sealed with the master key. */
export interface E2bSandboxSpec {
  template: string;
  metadata: Record<string, string>;
  /** The lifetime E2B calls `timeout`, in seconds, restarted by connect and set by setTimeout. */
  timeout_s: number;
  /** When the lifetime ends (ISO 8601), while running. */
  end_at: string;
  /** Pause instead of kill when the lifetime ends (E2B's autoPause / onTimeout: "pause"). */
  auto_pause: boolean;
  /** When the sandbox was last started or resumed (E2B's startedAt). */
  started_at: string;
  /** Seen paused or stopped by the lifetime check: a wake by traffic (not connect) restarts the lifetime. */
  paused?: boolean;
  /** The envd access token, sealed (base64 nonce and ciphertext). */
  token: { nonce: string; ciphertext: string };
}

/** A stored spec with the fields older rows lack filled in. */
function readSpec(json: string): InstanceSpec {
  const spec = JSON.parse(json) as Partial<InstanceSpec> & Omit<InstanceSpec, "parent_id" | "depth" | "capabilities" | "workdir" | "user" | "network">;
  return {
    ...spec,
    workdir: spec.workdir ?? null,
    user: spec.user ?? null,
    parent_id: spec.parent_id ?? null,
    depth: spec.depth ?? 0,
    capabilities: spec.capabilities ?? DEFAULT_CAPABILITIES,
    network: spec.network ?? DEFAULT_NETWORK,
  };
}

/** A stored instance. */
export interface InstanceRow {
  id: string;
  handle: string;
  state: InstanceState;
  spec: InstanceSpec;
  exit_code: number | null;
  error: string | null;
  vmm_pid: number | null;
  created_at: string;
  started_at: string | null;
  last_active_at: string | null;
  /** The guest's keepalive lease (ms since the epoch), kept across a daemon restart; null or absent when none. */
  keepalive_until?: number | null;
}

type RawRow = Omit<InstanceRow, "spec"> & { spec: string };

/** Mutable columns. */
export type InstanceUpdate = Partial<Pick<InstanceRow, "state" | "exit_code" | "error" | "vmm_pid" | "started_at" | "last_active_at" | "keepalive_until">>;

/** Table access for instances. */
export class InstancesTable {
  /** `events`: told after every write (daemon/events.ts), so fronts follow state without polling. */
  constructor(
    private readonly db: Database,
    private readonly events?: EventBus,
  ) {}

  private changed(id: string): void {
    this.events?.publish({ kind: "instance", id });
  }

  /** Insert a new instance. */
  insert(row: InstanceRow): void {
    this.db
      .query(
        `INSERT INTO instances (id, handle, state, spec, exit_code, error, vmm_pid, created_at, started_at, last_active_at)
         VALUES ($id, $handle, $state, $spec, $exit_code, $error, $vmm_pid, $created_at, $started_at, $last_active_at)`,
      )
      .run({ ...row, spec: JSON.stringify(row.spec) });
    this.changed(row.id);
  }

  /** Update lifecycle columns. */
  update(id: string, fields: InstanceUpdate): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    this.db.query(`UPDATE instances SET ${keys.map((k) => `${k} = $${k}`).join(", ")} WHERE id = $id`).run({ ...fields, id } as Record<string, string | number | null>);
    this.changed(id);
  }

  /** By id or handle. */
  find(ref: string): InstanceRow | null {
    const row = this.db.query(`SELECT * FROM instances WHERE id = $ref OR handle = $ref`).get({ ref }) as RawRow | null;
    return row ? { ...row, spec: readSpec(row.spec) } : null;
  }

  /** All instances, oldest first. */
  list(): InstanceRow[] {
    return (this.db.query(`SELECT * FROM instances ORDER BY created_at`).all() as RawRow[]).map((r) => ({ ...r, spec: readSpec(r.spec) }));
  }

  /** Replace the spec (only `expose` changes after creation). */
  updateSpec(id: string, spec: InstanceSpec): void {
    this.db.query(`UPDATE instances SET spec = $spec WHERE id = $id`).run({ id, spec: JSON.stringify(spec) });
    this.changed(id);
  }

  /** Delete one. */
  delete(id: string): void {
    this.db.query(`DELETE FROM instances WHERE id = $id`).run({ id });
    this.changed(id);
  }
}
