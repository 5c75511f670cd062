/**
 * @module daemon/instances/service
 * Instances: long-lived VMs with the lifecycle
 * `starting -> running -> paused -> stopped` (+ `failed`), operations
 * serialised per instance, and one `ensureRunning()` used by everything that
 * needs the guest (router connections, exec, tether).
 *
 * Waking a stopped instance restores its memory snapshot when one exists
 * (taken at idle stop; the guest resumes where it was, its clock reset), and
 * otherwise cold boots and starts the command again. The snapshot is consumed
 * by the restore: once the VM runs on, its disk moves ahead of the snapshot.
 *
 * Secrets and snapshots: secret values reach the guest only as the command's
 * environment over the control channel, never on QEMU's command line. A
 * running process's environment lives in guest RAM, so an instance started
 * with secrets is never memory-snapshotted: at idle stop it is shut down and
 * cold boots on the next wake, receiving its secrets afresh.
 *
 * Workspace instances are not snapshotted either: QEMU 7.2 cannot migrate a
 * VM with a virtiofs device, so they cold boot on wake (their files live on
 * the host and are never lost).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BackendError, Conflict, isAppError, NotFound, PreconditionFailed } from "../../api/errors.ts";
import type { SpawnCapabilities } from "../../api/schema/capabilities.ts";
import type { Instance, InstanceCreate } from "../../api/schema/instances.ts";
import type { Backend, Vm } from "../../vmm/backend.ts";
import { startGuestProcess } from "../../vmm/guest-process.ts";
import type { Logger } from "../api/deps.ts";
import { newId } from "../apps/service.ts";
import type { ImagesService } from "../images/service.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { InstanceRow, InstancesTable } from "../registry/instances.ts";
import type { SecretsService } from "../secrets/service.ts";
import type { VmLauncher } from "../vms.ts";
import { freePort } from "./ports.ts";
import { newRuntime, type Runtime } from "./runtime.ts";
import { idleAction } from "./idle.ts";
import { SerialQueue } from "./serial.ts";
import { instanceView } from "./view.ts";
import { buildSpec, type SpecSources } from "./spec.ts";

/** The process id of an instance's command inside its VM. */
const MAIN = "main";

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
  private readonly runtimes = new Map<string, Runtime>();
  private readonly serial = new SerialQueue();
  /** Keepalive leases (`keepalive_acquire`): instance id -> ms since the epoch until which the idle policy leaves it alone. */
  private readonly keepalives = new Map<string, number>();
  /** Called with every VM an instance boots or restores (the tether subscribes to its frames). */
  readonly onBoot: ((id: string, vm: Vm) => void)[] = [];
  /** Called (and awaited) when a new instance is registered, before it boots (the router listens on its public ports). */
  readonly onCreated: ((id: string) => Promise<void>)[] = [];
  /** Called when an instance is deleted (the router drops its listeners, the tether its frames). */
  readonly onDeleted: ((id: string) => void)[] = [];

  constructor(private readonly deps: InstanceDeps) {}

  private runtime(id: string): Runtime {
    let rt = this.runtimes.get(id);
    if (!rt) {
      rt = newRuntime();
      this.runtimes.set(id, rt);
    }
    return rt;
  }

  private snapshotPath(id: string): string {
    return join(this.deps.instancesDir, id, "snapshot.zst");
  }

  /** The API view of a row. */
  view(row: InstanceRow): Instance {
    const rt = this.runtimes.get(row.id);
    return instanceView(row, rt?.vm ? rt.hostPorts : null, existsSync(this.snapshotPath(row.id)));
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

  /** One instance. */
  get(ref: string): Instance {
    return this.view(this.row(ref));
  }

  /**
   * Create and boot an instance. A stopped instance of the same name is
   * started again instead (`aegis instance start --name N`); a live one is a
   * Conflict.
   */
  async create(input: InstanceCreate, lineage?: Lineage): Promise<Instance> {
    if (input.name) {
      const existing = this.deps.table.find(input.name);
      if (existing) {
        if (existing.state === "stopped" || existing.state === "failed") return this.start(existing.id);
        throw new Conflict(`instance "${input.name}" already exists and is ${existing.state}`, `use it, or 'aegis instance delete ${input.name}' first`);
      }
    }
    const spec = buildSpec(input, this.deps);
    if (lineage) Object.assign(spec, lineage);
    const id = newId("inst");
    const row: InstanceRow = {
      id,
      handle: input.name ?? id,
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

  /** Make sure the instance's VM runs: resume when paused, restore or boot when stopped. */
  async ensureRunning(ref: string): Promise<Runtime> {
    const id = this.row(ref).id;
    return this.serial.run(id, async () => {
      const row = this.row(id);
      const rt = this.runtime(id);
      if (row.state === "running" && rt.vm) return rt;
      if (row.state === "paused" && rt.vm) {
        await rt.vm.resume();
        this.deps.table.update(id, { state: "running" });
        this.deps.log.info("instance resumed", { instance: id });
        return rt;
      }
      await this.boot(row, rt);
      return rt;
    });
  }

  private async boot(row: InstanceRow, rt: Runtime): Promise<void> {
    const id = row.id;
    this.deps.table.update(id, { state: "starting", error: null, exit_code: null });
    const snapshot = this.snapshotPath(id);
    try {
      const image = row.spec.image ? await this.deps.images.resolve(row.spec.image) : null;
      let restored = false;
      let vm: Vm | null = null;
      if (existsSync(snapshot) && this.deps.backend?.capabilities.memorySnapshots) {
        try {
          vm = await this.launch(row, rt, image?.rootfs, snapshot);
          restored = true;
        } catch (err) {
          // A snapshot that does not restore (stale, corrupt) is only a cache: cold boot instead.
          this.deps.log.warn("snapshot restore failed; cold booting", { instance: id, error: String(err) });
        }
        rmSync(snapshot, { force: true });
        rmSync(`${snapshot}.json`, { force: true });
      }
      vm ??= await this.launch(row, rt, image?.rootfs, undefined);
      rt.vm = vm;
      rt.expectingExit = false;
      this.watchExit(id, vm, rt);
      this.attachMain(id, vm);
      for (const hook of this.onBoot) hook(id, vm);
      if (!restored) {
        const { env, cwd } = await this.commandEnvironment(id);
        await startGuestProcess(vm.channel, { id: MAIN, argv: row.spec.command, env, cwd, primary: true });
      }
      rt.lastActivity = Date.now();
      this.deps.table.update(id, { state: "running", vmm_pid: vm.pid, started_at: new Date().toISOString() });
      this.deps.log.info(restored ? "instance restored" : "instance booted", { instance: id });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      rt.expectingExit = true;
      rt.vm?.kill();
      rt.vm = null;
      this.deps.logs.note(id, `aegis: could not start the instance: ${message}`);
      this.deps.table.update(id, { state: "failed", error: message.split("\n")[0] ?? message });
      this.deps.log.error("instance boot failed", { instance: id, error: message });
      throw isAppError(err) ? err : new BackendError(`instance ${row.handle} could not start: ${message}`, `see 'aegis logs ${row.handle}'`);
    }
  }

  /** Boot (or restore) the instance's VM with fresh host ports for its exposed guest ports. */
  private async launch(row: InstanceRow, rt: Runtime, rootfs: string | undefined, restoreFrom: string | undefined): Promise<Vm> {
    rt.hostPorts = new Map();
    for (const e of row.spec.expose) rt.hostPorts.set(e.guest_port, await freePort());
    return this.deps.vms.launch({
      id: row.id,
      memoryMb: row.spec.memory_mb,
      vcpus: row.spec.vcpus,
      rootfs,
      ports: [...rt.hostPorts].map(([guestPort, hostPort]) => ({ guestPort, hostPort })),
      overlayDisk: join(this.deps.instancesDir, row.id, "overlay.ext4"),
      workspace: row.spec.workspace ?? undefined,
      restoreFrom,
    });
  }

  /**
   * The environment an instance's processes get: its env and the secrets it
   * was granted (resolved now, so a changed secret applies at the next start),
   * the image's PATH (unless set) and WorkingDir.
   */
  async commandEnvironment(ref: string): Promise<{ env: Record<string, string>; cwd: string | undefined }> {
    const row = this.row(ref);
    const image = row.spec.image ? await this.deps.images.resolve(row.spec.image) : null;
    const names = row.spec.secrets.includes("*") ? "*" : row.spec.secrets;
    const secretEnv = names === "*" || names.length > 0 ? this.deps.secrets.resolve(names, row.spec.app_id ?? undefined) : {};
    const env = { ...row.spec.env, ...secretEnv };
    return { env: image?.env_path && env.PATH === undefined ? { PATH: image.env_path, ...env } : env, cwd: image?.working_dir ?? undefined };
  }

  /** Record the command's output, and its exit (the harness then powers the VM off). */
  private attachMain(id: string, vm: Vm): void {
    vm.channel.onNotification("output", (p) => {
      if (p.id === MAIN) this.deps.logs.append(id, p.stream, Buffer.from(p.data, "base64"));
    });
    vm.channel.onNotification("exit", (p) => {
      if (p.id !== MAIN) return;
      this.deps.logs.note(id, `aegis: command exited with code ${p.code}${p.signal ? ` (${p.signal})` : ""}; the instance stops`);
      this.deps.table.update(id, { exit_code: p.code });
      this.runtime(id).expectingExit = true;
    });
  }

  /** When the VM process ends, the instance is stopped (or failed if it crashed while we did not stop it). */
  private watchExit(id: string, vm: Vm, rt: Runtime): void {
    void vm.exited.then((code) => {
      if (rt.vm !== vm) return;
      rt.vm = null;
      const row = this.deps.table.find(id);
      if (!row) return;
      if (rt.expectingExit) {
        this.deps.table.update(id, { state: "stopped", vmm_pid: null });
      } else {
        this.deps.logs.note(id, `aegis: the VM exited unexpectedly (code ${code}); it boots again on the next request`);
        this.deps.table.update(id, { state: "stopped", vmm_pid: null, error: `VM exited unexpectedly (code ${code})` });
      }
    });
  }

  /** Pause a running instance (QMP stop). */
  pause(ref: string): Promise<Instance> {
    const id = this.row(ref).id;
    return this.serial.run(id, async () => {
      const row = this.row(id);
      const rt = this.runtime(id);
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
      const rt = this.runtime(id);
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
          await vm.snapshot(this.snapshotPath(id));
          this.deps.log.info("instance snapshotted", { instance: id });
        } catch (err) {
          rmSync(this.snapshotPath(id), { force: true });
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
    return this.deps.backend?.capabilities.memorySnapshots === true && row.spec.secrets.length === 0 && row.spec.workspace === null;
  }

  /** The instances `id` spawned (its direct children). */
  children(id: string): InstanceRow[] {
    return this.deps.table.list().filter((r) => r.spec.parent_id === id);
  }

  /** Delete an instance and, first, its children (recursively): VMs, disks, snapshots and logs. */
  async delete(ref: string): Promise<void> {
    const id = this.row(ref).id;
    for (const child of this.children(id)) await this.delete(child.id);
    return this.serial.run(id, async () => {
      const rt = this.runtime(id);
      if (rt.vm) {
        rt.expectingExit = true;
        rt.vm.kill();
        await rt.vm.exited;
        rt.vm = null;
      }
      this.deps.table.delete(id);
      this.runtimes.delete(id);
      this.keepalives.delete(id);
      for (const hook of this.onDeleted) hook(id);
      rmSync(join(this.deps.instancesDir, id), { recursive: true, force: true });
      this.deps.log.info("instance deleted", { instance: id });
    });
  }

  /** Hold the idle policy off `id` until `until` (ms since the epoch), or release the hold with null. */
  setKeepalive(id: string, until: number | null): void {
    if (until === null) this.keepalives.delete(id);
    else this.keepalives.set(id, until);
  }

  /** The keepalive deadline of `id` (ms since the epoch), or null when none holds (an expired one is dropped). */
  keepaliveUntil(id: string, now = Date.now()): number | null {
    const until = this.keepalives.get(id);
    if (until === undefined) return null;
    if (until <= now) {
      this.keepalives.delete(id);
      return null;
    }
    return until;
  }

  /**
   * Change an instance's exposed (router-served) ports, e.g. from the MCP
   * `expose_port` / `unexpose_port` tools. On a running VM the forwards
   * change at once where the backend can (QEMU `hostfwd_add`/`_remove`);
   * otherwise from the next boot on.
   */
  async setExpose(id: string, expose: InstanceRow["spec"]["expose"]): Promise<void> {
    const row = this.row(id);
    this.deps.table.updateSpec(id, { ...row.spec, expose });
    const rt = this.runtimes.get(id);
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
  }

  /** The host port QEMU forwards to `guestPort` of `id`'s running VM, or null. */
  hostPort(id: string, guestPort: number): number | null {
    const rt = this.runtimes.get(id);
    return rt?.vm ? (rt.hostPorts.get(guestPort) ?? null) : null;
  }

  /** Note that activity started (a connection, an exec, a tether frame). */
  activityStarted(id: string): void {
    const rt = this.runtime(id);
    rt.active++;
    rt.lastActivity = Date.now();
  }

  /** Note a moment of activity (e.g. a tether frame from the guest) without holding the instance awake. */
  touch(id: string): void {
    this.runtime(id).lastActivity = Date.now();
  }

  /** Note that activity ended. */
  activityEnded(id: string): void {
    const rt = this.runtime(id);
    rt.active = Math.max(0, rt.active - 1);
    rt.lastActivity = Date.now();
    this.deps.table.update(id, { last_active_at: new Date(rt.lastActivity).toISOString() });
  }

  /** Idle policy tick (see idle.ts): pause, or stop with a snapshot, the instances idle long enough. */
  async idleTick(now = Date.now()): Promise<void> {
    const canPause = this.deps.backend?.capabilities.pauseResume === true;
    for (const row of this.deps.table.list()) {
      const rt = this.runtimes.get(row.id);
      if (!rt?.vm) continue;
      const action = idleAction(
        {
          state: row.state,
          pauseAfterS: row.spec.pause_after_s,
          stopAfterS: row.spec.stop_after_s,
          idleS: (now - rt.lastActivity) / 1000,
          busy: rt.active > 0 || this.keepaliveUntil(row.id, now) !== null,
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

  /** After a daemon restart: instances whose VM was lost are stopped (they wake on demand). */
  reconcile(killStale: (pid: number) => void): void {
    for (const row of this.deps.table.list()) {
      if (row.state === "stopped") continue;
      if (row.vmm_pid) killStale(row.vmm_pid);
      // A VM that was running when the daemon died ran past any snapshot it had.
      if (row.state !== "failed") rmSync(this.snapshotPath(row.id), { force: true });
      this.deps.table.update(row.id, { state: row.state === "failed" ? "failed" : "stopped", vmm_pid: null });
    }
  }

  /** Daemon shutdown: power every instance VM off (instances stay, stopped, and wake on demand). */
  async shutdown(): Promise<void> {
    for (const [id, rt] of this.runtimes) {
      if (!rt.vm) continue;
      rt.expectingExit = true;
      rt.vm.kill();
      await rt.vm.exited;
      rt.vm = null;
      this.deps.table.update(id, { state: "stopped", vmm_pid: null });
    }
  }
}
