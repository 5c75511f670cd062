/**
 * @module daemon/registry/vms
 * Rows of `vms`: every VM process the backend spawned and that has not
 * exited, written before the VM is used (the backend's {@link VmJournal}),
 * marked `ready` once the launcher handed the VM out. A row keeps the VM's
 * network slot (`net_slot`) and, in `spec`, its egress policy. A starting aegisd
 * re-adopts ready VMs from these rows and kills the others (live restore).
 */
import type { Database } from "bun:sqlite";
import type { VmJournal, VmProcessRecord, VmSpec } from "../../vmm/backend.ts";

/** One recorded VM process. */
export interface VmRow {
  rec: VmProcessRecord;
  spec: VmSpec;
  ready: boolean;
}

interface RawRow {
  id: string;
  pid: number;
  start_time: string;
  virtiofsd_pid: number | null;
  virtiofsd_start_time: string | null;
  template: number;
  ready: number;
  spec: string;
  net_slot: number | null;
}

/** Table access for VM processes; also the backend's journal. */
export class VmsTable implements VmJournal {
  constructor(private readonly db: Database) {}

  /** Record a spawned VM process (a retry of the same id replaces the row). */
  spawned(rec: VmProcessRecord, spec: VmSpec): void {
    this.db
      .query(
        `INSERT OR REPLACE INTO vms (id, pid, start_time, virtiofsd_pid, virtiofsd_start_time, template, ready, spec, net_slot, created_at)
         VALUES ($id, $pid, $start_time, $virtiofsd_pid, $virtiofsd_start_time, $template, 0, $spec, $net_slot, $created_at)`,
      )
      .run({
        id: rec.id,
        pid: rec.pid,
        start_time: rec.startTime,
        virtiofsd_pid: rec.virtiofsdPid ?? null,
        virtiofsd_start_time: rec.virtiofsdStartTime ?? null,
        template: rec.template ? 1 : 0,
        spec: JSON.stringify(spec),
        net_slot: rec.netSlot ?? null,
        created_at: new Date().toISOString(),
      });
  }

  /** The process `pid` of `id` exited (a newer row of the same id is left alone). */
  gone(id: string, pid: number): void {
    this.db.query(`DELETE FROM vms WHERE id = $id AND pid = $pid`).run({ id, pid });
  }

  /** The VM `pid` of `id` was handed out, booted and set up: adoptable from now on. */
  ready(id: string, pid: number): void {
    this.db.query(`UPDATE vms SET ready = 1 WHERE id = $id AND pid = $pid`).run({ id, pid });
  }

  /** Replace the port forwards in the recorded spec of `id` (forwards added or removed while the VM runs). */
  setPorts(id: string, ports: VmSpec["ports"]): void {
    const row = this.db.query(`SELECT spec FROM vms WHERE id = $id`).get({ id }) as { spec: string } | null;
    if (!row) return;
    const spec = JSON.parse(row.spec) as VmSpec;
    this.db.query(`UPDATE vms SET spec = $spec WHERE id = $id`).run({ id, spec: JSON.stringify({ ...spec, ports }) });
  }

  /** Forget `id` (its VM was killed or could not be adopted). */
  remove(id: string): void {
    this.db.query(`DELETE FROM vms WHERE id = $id`).run({ id });
  }

  /** Every recorded VM process. */
  all(): VmRow[] {
    const rows = this.db.query(`SELECT * FROM vms`).all() as RawRow[];
    return rows.map((r) => ({
      rec: {
        id: r.id,
        pid: r.pid,
        startTime: r.start_time,
        ...(r.virtiofsd_pid !== null && r.virtiofsd_start_time !== null ? { virtiofsdPid: r.virtiofsd_pid, virtiofsdStartTime: r.virtiofsd_start_time } : {}),
        template: r.template === 1,
        ...(r.net_slot !== null ? { netSlot: r.net_slot } : {}),
      },
      spec: JSON.parse(r.spec) as VmSpec,
      ready: r.ready === 1,
    }));
  }
}
