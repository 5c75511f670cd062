/**
 * @module daemon/instances/service
 * Instances: long-lived VMs with the lifecycle
 * `starting -> running -> paused -> stopped` (+ `failed`), operations
 * serialised per instance, and one `ensureRunning()` used by everything that
 * needs the guest (router connections, exec, tether). Booting and restoring
 * live in boot.ts, activity and keepalive leases in activity.ts; this module
 * owns the state changes.
 *
 * Secrets and snapshots: secret values reach the guest only as the command's
 * environment over the control channel, never on QEMU's command line. A
 * running process's environment lives in guest RAM, so an instance started
 * with a raw secret is never memory-snapshotted: at idle stop it is shut down
 * and cold boots on the next wake, receiving its secrets afresh. One whose
 * secrets are all substituted (api/egress-secrets.ts: the guest holds only
 * placeholders, the values stay in aegisd's egress proxy) is snapshotted
 * like one without secrets; what it was given is recorded at boot
 * (`Runtime.rawSecrets`), so a binding changed while it runs cannot make a
 * raw value look substituted.
 *
 * Workspace instances are not snapshotted either: QEMU 7.2 cannot migrate a
 * VM with a virtiofs device, so they cold boot on wake (their files live on
 * the host and are never lost).
 */
import { endOrphanedExecs } from "./orphans.ts";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Conflict, InvalidRequest, NotFound, PreconditionFailed } from "../../api/errors.ts";
import type { SpawnCapabilities } from "../../api/schema/capabilities.ts";
import type { Instance, InstanceCreate } from "../../api/schema/instances.ts";
import type { Backend, Vm } from "../../vmm/backend.ts";
import type { Logger } from "../api/deps.ts";
import { newId } from "../apps/service.ts";
import type { ImagesService } from "../images/service.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { E2bSandboxSpec, InstanceRow, InstancesTable } from "../registry/instances.ts";
import type { SecretsService } from "../secrets/service.ts";
import type { VmLauncher } from "../vms.ts";
import { freePort } from "./ports.ts";
import { InstanceActivity } from "./activity.ts";
import { existingSnapshot, InstanceBoot, rawSnapshotPath, removeInstanceSnapshots, snapshotPath } from "./boot.ts";
import { SnapshotFormatError } from "../../vmm/snapshot-split.ts";
import { type Runtime, Runtimes } from "./runtime.ts";
import { idleAction } from "./idle.ts";
import type { WakeTrace } from "./wake-trace.ts";
import { SerialQueue } from "./serial.ts";
import { instanceView } from "./view.ts";
import { buildSpec, type SpecSources, specImage } from "./spec.ts";
import { childHandle } from "./names.ts";
import { specDifferences } from "./same-spec.ts";

/** How long `aegis down` gives the instances' memory snapshots, together (its client waits 5 s for aegisd). */
export const SHUTDOWN_SNAPSHOT_BUDGET_MS = 3500;

/** Everything the instance service uses. */
export interface InstanceDeps extends SpecSources {
  table: InstancesTable;
  logs: LogStore;
  secrets: SecretsService;
  images: ImagesService;
  vms: VmLauncher;
  backend: Backend | null;
  instancesDir: string;
  log: Logger;
}

/** Where a child instance sits: set by the MCP host for `instance_spawn`, never by the HTTP API. */
export interface Lineage {
  parent_id: string;
  depth: number;
  capabilities: SpawnCapabilities;
}

/** Instance lifecycle. */
export class InstancesService {
  private readonly runtimes = new Runtimes();
  private readonly serial = new SerialQueue();
  private readonly booter: InstanceBoot;
  /** Activity accounting and keepalive leases (the idle policy's inputs). */
  readonly activity: InstanceActivity;
  /** Called with every VM an instance boots or restores (the tether subscribes to its frames). */
  readonly onBoot: ((id: string, vm: Vm) => void)[];
  /** Called (and awaited) when a new instance is registered, before it boots (the router listens on its public ports). */
  readonly onCreated: ((id: string) => Promise<void>)[] = [];
  /** Called when an instance is deleted (the router drops its listeners, the tether its frames). */
  readonly onDeleted: ((id: string) => void)[] = [];

  constructor(private readonly deps: InstanceDeps) {
    this.booter = new InstanceBoot(deps, this.runtimes);
    this.onBoot = this.booter.onBoot;
    this.activity = new InstanceActivity(this.runtimes, deps.table);
  }

  private snapshotPath(id: string): string {
    return snapshotPath(this.deps.instancesDir, id);
  }

  /** The API view of a row. */
  view(row: InstanceRow): Instance {
    const rt = this.runtimes.peek(row.id);
    return instanceView(row, rt?.vm ? rt.hostPorts : null, existingSnapshot(this.deps.instancesDir, row.id) !== undefined);
  }

  /** A row by id or handle; NotFound otherwise. */
  row(ref: string): InstanceRow {
    const row = this.deps.table.find(ref);
    if (!row) throw new NotFound(`instance "${ref}" not found`, "list instances with 'aegis instance list'");
    return row;
  }

  /** A row by id or handle, or null. */
  find(ref: string): InstanceRow | null {
    return this.deps.table.find(ref);
  }

  /** Every instance. */
  list(): Instance[] {
    return this.deps.table.list().map((r) => this.view(r));
  }

  /**
   * Stop every instance of an app that is not stopped (`aegis app delete`:
   * "stop any running instances"). The instances stay, stopped, so their
   * logs and disks can still be read or deleted; returns their ids.
   */
  async stopAppInstances(appId: string): Promise<string[]> {
    const ids = this.deps.table.list().filter((r) => r.spec.app_id === appId && r.state !== "stopped").map((r) => r.id);
    for (const id of ids) await this.stop(id);
    return ids;
  }

  /** One instance. */
  get(ref: string): Instance {
    return this.view(this.row(ref));
  }

  /**
   * Create and boot an instance. For a top-level name that exists and is
   * stopped (or failed), `aegis instance start --name N` starts it again as it
   * is, like `docker start`, but only when every field the request gives
   * matches the stored spec (same-spec.ts); otherwise, and for a live
   * instance, it is a Conflict that says why. A child (`lineage`) gets the
   * handle `NAME.PARENT` (names.ts) and its name must be new.
   */
  async create(input: InstanceCreate, lineage?: Lineage, e2b?: E2bSandboxSpec): Promise<Instance> {
    const handle = input.name && lineage ? childHandle(input.name, this.row(lineage.parent_id).handle) : input.name;
    if (handle) {
      const existing = this.deps.table.find(handle);
      if (existing && lineage) throw new Conflict(`an instance named "${input.name}" (${handle}) already exists`, "choose another name, or omit it to get a generated one");
      if (existing) {
        if (existing.state !== "stopped" && existing.state !== "failed") {
          throw new Conflict(`instance "${handle}" already exists and is ${existing.state}`, `use it, or 'aegis instance delete ${handle}' first`);
        }
        const diffs = specDifferences(input, existing.spec, this.deps, existing.spec.image ? this.deps.images.find(existing.spec.image) : null);
        if (diffs.length > 0) {
          throw new Conflict(
            `instance "${handle}" already exists (${existing.state}) with a different ${diffs.map((d) => d.field).join(", ")}: ${diffs.map((d) => `${d.field} is ${d.stored}, not ${d.requested}`).join("; ")}`,
            `start it as it is with 'aegis instance start --name ${handle}' (no other flags) or 'aegis instance resume ${handle}', or 'aegis instance delete ${handle}' first to create it anew`,
          );
        }
        return this.start(existing.id);
      }
    }
    const ref = specImage(input, this.deps);
    const spec = buildSpec(input, this.deps, ref ? await this.deps.images.resolve(ref) : null);
    if (lineage) Object.assign(spec, lineage);
    if (e2b) spec.e2b = e2b;
    const id = newId("inst");
    const row: InstanceRow = {
      id,
      handle: handle ?? id,
      state: "stopped",
      spec,
      exit_code: null,
      error: null,
      vmm_pid: null,
      created_at: new Date().toISOString(),
      started_at: null,
      last_active_at: null,
    };
    this.deps.table.insert(row);
    this.deps.log.info("instance created", { instance: id, handle: row.handle, secrets: spec.secrets });
    try {
      for (const hook of this.onCreated) await hook(id);
    } catch (err) {
      // A public port that cannot be bound fails the creation and leaves nothing behind.
      await this.delete(id);
      throw err;
    }
    return this.start(id);
  }

  /** Start (or wake) an instance and return it running. */
  async start(ref: string): Promise<Instance> {
    await this.ensureRunning(ref);
    return this.get(ref);
  }

  /** Settles once the VMs of a previous daemon are re-adopted (set by the daemon at start; see reconcile). */
  restored: Promise<void> = Promise.resolve();

  /**
   * Make sure the instance's VM runs: resume when paused, restore or boot
   * when stopped. `trace` (the router's) gets the phases of a boot or restore.
   */
  async ensureRunning(ref: string, trace?: WakeTrace): Promise<Runtime> {
    await this.restored;
    const id = this.row(ref).id;
    return this.serial.run(id, async () => {
      const row = this.row(id);
      const rt = this.runtimes.of(id);
      if (row.state === "running" && rt.vm) return rt;
      trace?.mark("queued");
      if (row.state === "paused" && rt.vm) {
        await rt.vm.resume();
        // Adopted paused: its harness could not be asked before (orphans.ts); nothing of ours runs in it yet.
        if (rt.orphansPending) {
          rt.orphansPending = false;
          void endOrphanedExecs(rt.vm.channel, id, this.deps.log);
        }
        this.deps.table.update(id, { state: "running" });
        this.deps.log.info("instance resumed", { instance: id });
        return rt;
      }
      await this.booter.boot(row, rt, trace);
      return rt;
    });
  }

  /** The environment an instance's processes get (see boot.ts): spec env, granted secrets, the image's PATH and WorkingDir. */
  commandEnvironment(ref: string): Promise<{ env: Record<string, string>; cwd: string | undefined; user: string | undefined }> {
    return this.booter.commandEnvironment(this.row(ref));
  }

  /** Pause a running instance (QMP stop). */
  pause(ref: string): Promise<Instance> {
    const id = this.row(ref).id;
    return this.serial.run(id, async () => {
      const row = this.row(id);
      const rt = this.runtimes.of(id);
      if (row.state !== "running" || !rt.vm) {
        throw new PreconditionFailed(`instance ${row.handle} is ${row.state}, not running`, undefined, { current: row.state, required: ["running"] });
      }
      if (!this.deps.backend?.capabilities.pauseResume) throw new PreconditionFailed(`the ${this.deps.backend?.name ?? "current"} backend cannot pause VMs`);
      await rt.vm.pause();
      this.deps.table.update(id, { state: "paused" });
      this.deps.log.info("instance paused", { instance: id });
      return this.get(id);
    });
  }

  /**
   * Stop an instance. With `snapshot`, the VM's memory is saved first when the
   * backend can and the instance may be snapshotted (no secrets, no
   * workspace), so the next wake restores it.
   */
  async stop(ref: string, opts: { snapshot: boolean } = { snapshot: false }): Promise<Instance> {
    const id = this.row(ref).id;
    // Children stop with their parent (an idle stop of the parent leaves them to their own idle policy).
    if (!opts.snapshot) for (const child of this.children(id)) await this.stop(child.id);
    return this.serial.run(id, async () => {
      const row = this.row(id);
      const rt = this.runtimes.of(id);
      if (!rt.vm) {
        if (row.state !== "stopped") this.deps.table.update(id, { state: "stopped", vmm_pid: null });
        return this.get(id);
      }
      const vm = rt.vm;
      this.deps.table.update(id, { state: "stopping" });
      rt.expectingExit = true;
      const snapshot = opts.snapshot && this.snapshottable(row);
      if (snapshot && vm.snapshot) {
        try {
          removeInstanceSnapshots(this.deps.instancesDir, id); // a legacy snapshot.zst would shadow nothing, but is stale now
          try {
            await vm.snapshot(this.snapshotPath(id));
          } catch (err) {
            if (!(err instanceof SnapshotFormatError)) throw err;
            // Not a stream the splitter knows (another QEMU): the whole stream, which any QEMU restores.
            this.deps.log.warn("snapshot not split; writing it whole", { instance: id, error: err.message });
            await vm.snapshot(rawSnapshotPath(this.deps.instancesDir, id));
          }
          this.deps.log.info("instance snapshotted", { instance: id });
        } catch (err) {
          removeInstanceSnapshots(this.deps.instancesDir, id);
          this.deps.log.warn("snapshot failed; the instance will cold boot", { instance: id, error: String(err) });
        }
        vm.kill();
      } else {
        await vm.stop();
      }
      await vm.exited;
      rt.vm = null;
      this.deps.table.update(id, { state: "stopped", vmm_pid: null });
      this.deps.log.info("instance stopped", { instance: id, snapshot });
      return this.get(id);
    });
  }

  /** Whether an instance's memory may be written to a snapshot (see the module notes). */
  snapshottable(row: InstanceRow): boolean {
    const noRawSecret = row.spec.secrets.length === 0 || this.runtimes.of(row.id).rawSecrets === false;
    return this.deps.backend?.capabilities.memorySnapshots === true && noRawSecret && row.spec.workspace === null && !row.spec.rootfs_dir && !row.spec.netns_path;
  }

  /** The instances `id` spawned (its direct children). */
  children(id: string): InstanceRow[] {
    return this.deps.table.list().filter((r) => r.spec.parent_id === id);
  }

  /** Delete an instance and, first, its children (recursively): VMs, disks, snapshots and logs. */
  async delete(ref: string): Promise<void> {
    const id = this.row(ref).id;
    for (const child of this.children(id)) await this.delete(child.id);
    await this.serial.run(id, async () => {
      const rt = this.runtimes.of(id);
      if (rt.vm) {
        rt.expectingExit = true;
        rt.vm.kill();
        await rt.vm.exited;
        rt.vm = null;
      }
      this.deps.table.delete(id);
      this.runtimes.forget(id);
      this.activity.forget(id);
      for (const hook of this.onDeleted) hook(id);
      rmSync(join(this.deps.instancesDir, id), { recursive: true, force: true });
      this.deps.log.info("instance deleted", { instance: id });
    });
    // A child its guest spawned while the VM was going down (the MCP host admits no new one once the row is gone).
    for (const child of this.children(id)) await this.delete(child.id);
  }

  /** Replace the E2B part of a sandbox's spec (lifetime changes). */
  setE2b(id: string, e2b: E2bSandboxSpec): void {
    const row = this.row(id);
    this.deps.table.updateSpec(id, { ...row.spec, e2b });
  }

  /**
   * The host port QEMU forwards to `guestPort` of the running VM, adding the
   * forward when there is none yet (E2B's `getHost(port)` reaches any port,
   * not only exposed ones). The forward lasts as long as this VM.
   */
  async forwardPort(id: string, guestPort: number): Promise<number | null> {
    const rt = this.runtimes.peek(id);
    const vm = rt?.vm;
    if (!rt || !vm) return null;
    const known = rt.hostPorts.get(guestPort);
    if (known !== undefined) return known;
    if (!vm.addPortForward || this.row(id).spec.netns_path) return null; // a pod network VM has no slirp to forward with
    const host = await freePort();
    await vm.addPortForward(host, guestPort);
    rt.hostPorts.set(guestPort, host);
    this.recordForwards(id, rt);
    return host;
  }

  /**
   * Keep the VM's recorded spec in step with the forwards added or removed
   * at run time (QEMU keeps them across a daemon restart; the next daemon
   * re-adopts them from this record: host ports, relays, router routes).
   */
  private recordForwards(id: string, rt: { hostPorts: Map<number, number> }): void {
    this.deps.vms.recordPorts(
      id,
      [...rt.hostPorts].map(([guestPort, hostPort]) => ({ guestPort, hostPort })),
    );
  }

  /**
   * Change an instance's exposed (router-served) ports, e.g. from the MCP
   * `expose_port` / `unexpose_port` tools. On a running VM the forwards
   * change at once where the backend can (QEMU `hostfwd_add`/`_remove`);
   * otherwise from the next boot on.
   */
  async setExpose(id: string, expose: InstanceRow["spec"]["expose"]): Promise<void> {
    const row = this.row(id);
    if (row.spec.netns_path && expose.length > 0) {
      throw new InvalidRequest(`instance "${id}" is on a pod network (netns_path ${row.spec.netns_path}): it has no forwarded ports`, "connect to the pod IP instead");
    }
    this.deps.table.updateSpec(id, { ...row.spec, expose });
    const rt = this.runtimes.peek(id);
    const vm = rt?.vm;
    if (!rt || !vm) return;
    const wanted = new Set(expose.map((e) => e.guest_port));
    for (const [guest, host] of [...rt.hostPorts]) {
      if (wanted.has(guest) || !vm.removePortForward) continue;
      await vm.removePortForward(host);
      rt.hostPorts.delete(guest);
    }
    for (const guest of wanted) {
      if (rt.hostPorts.has(guest) || !vm.addPortForward) continue;
      const host = await freePort();
      await vm.addPortForward(host, guest);
      rt.hostPorts.set(guest, host);
    }
    this.recordForwards(id, rt);
  }

  /** The host port QEMU forwards to `guestPort` of `id`'s running VM, or null. */
  hostPort(id: string, guestPort: number): number | null {
    const rt = this.runtimes.peek(id);
    return rt?.vm ? (rt.hostPorts.get(guestPort) ?? null) : null;
  }

  /** Idle policy tick (see idle.ts): pause, or stop with a snapshot, the instances idle long enough. */
  async idleTick(now = Date.now()): Promise<void> {
    const canPause = this.deps.backend?.capabilities.pauseResume === true;
    for (const row of this.deps.table.list()) {
      if (!this.runtimes.peek(row.id)?.vm) continue;
      const action = idleAction(
        {
          state: row.state,
          pauseAfterS: row.spec.pause_after_s,
          stopAfterS: row.spec.stop_after_s,
          idleS: this.activity.idleSeconds(row.id, now),
          busy: this.activity.busy(row.id, now),
        },
        canPause,
      );
      try {
        if (action === "pause") await this.pause(row.id);
        else if (action === "snapshot-stop") await this.stop(row.id, { snapshot: true });
        else if (action === "stop") await this.stop(row.id, { snapshot: false });
      } catch (err) {
        this.deps.log.warn("idle policy step failed", { instance: row.id, error: String(err) });
      }
    }
  }

  /**
   * After a daemon restart (live restore): a running or paused instance
   * whose VM still runs is re-adopted (same VM, same host ports, its guest
   * processes and memory untouched, the router serving it again); the others
   * are stopped, their VM killed if it still runs (they wake on demand).
   */
  async reconcile(killStale: (pid: number) => void): Promise<void> {
    await Promise.all(
      this.deps.table.list().map(async (row) => {
        const rec = this.deps.vms.recorded(row.id);
        if ((row.state === "running" || row.state === "paused") && rec) {
          try {
            await this.adopt(row, rec);
            this.deps.log.info("instance re-adopted", { instance: row.id, pid: rec.rec.pid, state: this.row(row.id).state });
            return;
          } catch (err) {
            this.deps.log.warn("instance VM could not be re-adopted", { instance: row.id, pid: rec.rec.pid, error: String(err) });
            this.deps.logs.note(row.id, `aegis: aegisd restarted and could not re-adopt the VM (${err instanceof Error ? err.message : String(err)}); it boots again on the next request`);
          }
        }
        if (rec && this.deps.vms.killRecorded(rec)) this.deps.log.warn("killed an instance VM it could not re-adopt", { instance: row.id, pid: rec.rec.pid, state: row.state });
        if (row.state === "stopped") return;
        if (!rec && row.vmm_pid) killStale(row.vmm_pid);
        // A VM that was running when the daemon died ran past any snapshot it had.
        if (row.state !== "failed") removeInstanceSnapshots(this.deps.instancesDir, row.id);
        this.deps.table.update(row.id, { state: row.state === "failed" ? "failed" : "stopped", vmm_pid: null });
      }),
    );
  }

  /** Re-adopt `row`'s running VM (see {@link reconcile}). */
  private async adopt(row: InstanceRow, rec: NonNullable<ReturnType<VmLauncher["recorded"]>>): Promise<void> {
    const rt = this.runtimes.of(row.id);
    const vm = await this.deps.vms.adopt(rec, (v) => this.booter.adopted(row.id, v, rt));
    // The forwards of this VM as last recorded: its launch ports plus what exposes and E2B's getHost added since (see recordForwards).
    rt.hostPorts = new Map(rec.spec.ports.map((p) => [p.guestPort, p.hostPort]));
    this.activity.restore(row.id, row);
    const paused = (vm as { isPaused?: boolean }).isPaused === true;
    // Execs of the previous daemon lost their clients (orphans.ts). Sent now, before `restored` lets any
    // new exec start, so the harness sees this request before any `run` of ours; not awaited (restart window).
    if (paused) rt.orphansPending = true;
    else void endOrphanedExecs(vm.channel, row.id, this.deps.log);
    this.deps.table.update(row.id, { state: paused ? "paused" : "running", vmm_pid: vm.pid, error: null });
  }

  /**
   * Daemon shutdown (`aegis down`): every instance VM stops as the idle
   * policy stops one, all at once: an instance that may be snapshotted (no
   * secrets, no workspace; see the module notes) is stopped with a memory
   * snapshot, so its next wake restores it where it was; the others are
   * powered off and cold boot on their next wake. Snapshots get
   * `budgetMs` together (`aegis down` waits 5 s for aegisd); a VM still
   * being snapshotted then is killed and its partial snapshot dropped (it
   * cold boots). With `keepVms` (an upgrade) running and paused VMs are left
   * as they are for the next daemon to re-adopt.
   */
  async shutdown(opts: { keepVms: boolean; budgetMs?: number } = { keepVms: false }): Promise<void> {
    if (opts.keepVms) return;
    const budget = Bun.sleep(opts.budgetMs ?? SHUTDOWN_SNAPSHOT_BUDGET_MS);
    const running = [...this.runtimes.entries()].filter(([, rt]) => rt.vm);
    await Promise.all(
      running.map(async ([id, rt]) => {
        const row = this.deps.table.find(id);
        const stopping = this.stop(id, { snapshot: row !== null && this.snapshottable(row) }).catch((err: unknown) => {
          this.deps.log.warn("instance did not stop cleanly at shutdown", { instance: id, error: String(err) });
        });
        await Promise.race([stopping, budget]);
        const vm = rt.vm;
        if (vm) {
          rt.expectingExit = true;
          vm.kill();
          await vm.exited;
          await stopping;
        }
        if (this.deps.table.find(id)?.state !== "stopped") this.deps.table.update(id, { state: "stopped", vmm_pid: null });
      }),
    );
  }
}
