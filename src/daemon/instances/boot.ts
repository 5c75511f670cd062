/**
 * @module daemon/instances/boot
 * Bringing an instance's VM up: restore its memory snapshot when one exists
 * (taken at idle stop; the guest resumes where it was, its clock reset),
 * otherwise cold boot (or template start) and start the command again. The
 * snapshot is consumed by the restore: once the VM runs on, its disk moves
 * ahead of the snapshot (its metadata is removed at once, its data a few
 * seconds later: {@link retireInstanceSnapshots}). Also the command's environment (spec env, granted
 * secrets, the image's PATH and WorkingDir), the main process's output into
 * the log store, and what a VM's exit means for the instance's state.
 *
 * Callers (service.ts) serialise boots per instance.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BackendError, isAppError } from "../../api/errors.ts";
import type { Vm } from "../../vmm/backend.ts";
import { startGuestProcess } from "../../vmm/guest-process.ts";
import type { InstanceRow } from "../registry/instances.ts";
import { freePort } from "./ports.ts";
import type { Runtime, Runtimes } from "./runtime.ts";
import type { InstanceDeps } from "./service.ts";
import type { Substitution } from "../../api/egress-secrets.ts";
import { withTrustEnv } from "../secrets/trust.ts";
import type { WakeTrace } from "./wake-trace.ts";
import { splitMemoryFile } from "../../vmm/snapshot-file.ts";

/** The process id of an instance's command inside its VM. */
export const MAIN = "main";

/**
 * Where an instance's memory snapshot lives: split (vmm/snapshot-split.ts)
 * into `snapshot.dev`, the device state QEMU loads, and `snapshot.ram`, the
 * guest RAM as a sparse file the restored VM maps copy-on-write, so a wake
 * does not copy the RAM before the guest runs (bench/wake.ts, same binary,
 * A/B with AEGIS_SNAPSHOT_SPLIT=0, 5 wakes each on a loaded host: incoming
 * migration load 18 ms split vs 243 ms whole, the phases after it within
 * noise: first answer 239 vs 264, router + first byte 216 vs 206). The
 * price: the restored VM keeps the RAM file (deleted, ~200 MB for a 512 MB
 * guest) allocated on disk until it stops again. AEGIS_SNAPSHOT_SPLIT=0
 * writes the whole stream to `snapshot.raw` instead ({@link rawSnapshotPath}).
 */
export function snapshotPath(instancesDir: string, id: string): string {
  return process.env.AEGIS_SNAPSHOT_SPLIT === "0" ? rawSnapshotPath(instancesDir, id) : join(instancesDir, id, "snapshot.dev");
}

/**
 * The whole migration stream, uncompressed: written when a stream cannot be
 * split (SnapshotFormatError) or the split is turned off. The wake reads it
 * into QEMU as a file (fd 3), which bench/boot.ts measured ~2x faster to
 * load than through `zstd -dc`.
 */
export function rawSnapshotPath(instancesDir: string, id: string): string {
  return join(instancesDir, id, "snapshot.raw");
}

/**
 * The snapshot an instance can wake from: `snapshot.dev` (with its RAM
 * file), `snapshot.raw`, or the zstd `snapshot.zst` an older aegisd wrote
 * (restoreUri decompresses by the name), so an upgrade does not turn every
 * idle instance into a cold boot.
 */
export function existingSnapshot(instancesDir: string, id: string): string | undefined {
  return snapshotFiles(instancesDir, id).find((p) => existsSync(p));
}

/** Every snapshot file name an instance may have, current first (for removal and lookup). */
export function snapshotFiles(instancesDir: string, id: string): string[] {
  return [join(instancesDir, id, "snapshot.dev"), rawSnapshotPath(instancesDir, id), join(instancesDir, id, "snapshot.zst")];
}

/** The data files of snapshot `p`: the stream, and a split snapshot's RAM file. */
function dataFiles(p: string): string[] {
  const ram = splitMemoryFile(p);
  return ram ? [p, ram] : [p];
}

/** Remove an instance's snapshots, whichever format, with their metadata (and one still being retired). */
export function removeInstanceSnapshots(instancesDir: string, id: string): void {
  for (const p of snapshotFiles(instancesDir, id)) {
    rmSync(`${p}.json`, { force: true });
    for (const f of dataFiles(p)) {
      rmSync(f, { force: true });
      rmSync(`${f}.partial`, { force: true });
      rmSync(`${f}.consumed`, { force: true });
    }
  }
}

/** How long a consumed snapshot waits before it is deleted (off the wake's path). */
export const RETIRE_DELAY_MS = 3000;

/**
 * Take an instance's snapshots out of use at once, delete their data later.
 * The metadata goes first (without it nothing restores the file), the data
 * file is renamed `<file>.consumed` and unlinked {@link RETIRE_DELAY_MS}
 * later: deleting a ~200 MB snapshot drops its page cache, which took
 * ~60 ms of a wake under load (bench/wake.ts). `onError` hears a failed delete.
 */
export function retireInstanceSnapshots(instancesDir: string, id: string, onError: (err: unknown) => void): void {
  const retired: string[] = [];
  // Never throws: it runs after the VM launched, which a failed rename must not turn into a failed boot.
  try {
    for (const p of snapshotFiles(instancesDir, id)) {
      rmSync(`${p}.json`, { force: true });
      for (const f of dataFiles(p)) {
        rmSync(`${f}.partial`, { force: true });
        if (!existsSync(f)) continue;
        // A restored VM maps a split snapshot's RAM file: renamed and unlinked, never written, it stays its own.
        renameSync(f, `${f}.consumed`);
        retired.push(`${f}.consumed`);
      }
    }
  } catch (err) {
    onError(err);
  }
  if (retired.length === 0) return;
  setTimeout(() => {
    // force: the instance may have been deleted (its directory with it), or snapshotted again meanwhile.
    Promise.all(retired.map((f) => rm(f, { force: true }))).catch(onError);
  }, RETIRE_DELAY_MS).unref();
}

/** Boots and restores instance VMs. */
export class InstanceBoot {
  /** Called with every VM an instance boots or restores (the tether subscribes to its frames). */
  readonly onBoot: ((id: string, vm: Vm) => void)[] = [];

  constructor(
    private readonly deps: InstanceDeps,
    private readonly runtimes: Runtimes,
  ) {}

  /** Boot (or restore) `row`'s VM, start its command unless restored, and mark it running; failed on error. */
  async boot(row: InstanceRow, rt: Runtime, trace?: WakeTrace): Promise<void> {
    const id = row.id;
    this.deps.table.update(id, { state: "starting", error: null, exit_code: null });
    const snapshot = existingSnapshot(this.deps.instancesDir, id);
    try {
      const image = row.spec.image ? await this.deps.images.resolve(row.spec.image) : null;
      trace?.mark("image");
      let restored = false;
      let vm: Vm | null = null;
      if (snapshot && this.deps.backend?.capabilities.memorySnapshots) {
        try {
          vm = await this.launch(row, rt, image?.rootfs, snapshot, this.secretPlan(row).substitutions, trace);
          trace?.mark("launched");
          restored = true;
        } catch (err) {
          // A snapshot that does not restore (stale, corrupt) is only a cache: cold boot instead.
          this.deps.log.warn("snapshot restore failed; cold booting", { instance: id, error: String(err) });
        }
        retireInstanceSnapshots(this.deps.instancesDir, id, (e) => this.deps.log.warn("could not delete a consumed snapshot", { instance: id, error: String(e) }));
        trace?.mark("snapshotRemoved");
      }
      const plan = this.secretPlan(row);
      if (!vm) {
        vm = await this.launch(row, rt, image?.rootfs, undefined, plan.substitutions, trace);
        trace?.mark("launched");
      }
      trace?.markAll(vm.bootMarks);
      // A restored guest holds only what a snapshot may hold (the snapshot rule: no raw secret).
      rt.rawSecrets = restored ? false : plan.raw.length > 0;
      // The snapshotted guest's listeners are back with it (a wake skips its port.wait); a new guest has none yet.
      if (!restored) rt.readyPorts = new Set();
      rt.vm = vm;
      rt.expectingExit = false;
      this.watchExit(id, vm, rt);
      this.attachMain(id, vm);
      for (const hook of this.onBoot) hook(id, vm);
      // A host-directory rootfs without a command runs no main process: its front (the shim) execs.
      if (!restored && row.spec.command.length > 0) {
        const { env, cwd, user } = await this.commandEnvironment(row);
        await startGuestProcess(vm.channel, { id: MAIN, argv: row.spec.command, env, cwd, user, primary: true });
      }
      rt.lastActivity = Date.now();
      this.deps.table.update(id, { state: "running", vmm_pid: vm.pid, started_at: new Date().toISOString() });
      if (trace) {
        trace.booted = restored ? "restored" : "booted";
        trace.mark("running");
      }
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

  /**
   * Take over a VM a previous daemon left running for instance `id` (live
   * restore; called before the guest replays what it held): its output goes
   * to the log again, its exit is watched, and the boot hooks (tether, MCP
   * host) attach as after a boot.
   */
  adopted(id: string, vm: Vm, rt: Runtime): void {
    // The egress proxy restarted with the new aegisd (vmm/network): give it the secrets again.
    const row = this.deps.table.find(id);
    if (row && row.spec.secrets.length > 0) {
      try {
        this.deps.vms.substitute(id, this.secretPlan(row).substitutions);
      } catch (err) {
        this.deps.log.warn("could not re-plan the secrets of an adopted instance; its substituted secrets are not sent", { instance: id, error: String(err) });
      }
    }
    rt.vm = vm;
    rt.expectingExit = false;
    this.watchExit(id, vm, rt);
    this.attachMain(id, vm);
    for (const hook of this.onBoot) hook(id, vm);
  }

  /** Boot (or restore) the instance's VM with fresh host ports for its exposed guest ports. */
  private async launch(row: InstanceRow, rt: Runtime, rootfs: string | undefined, restoreFrom: string | undefined, substitutions: Substitution[], trace?: WakeTrace): Promise<Vm> {
    rt.hostPorts = new Map();
    for (const e of row.spec.expose) rt.hostPorts.set(e.guest_port, await freePort());
    trace?.mark("ports");
    return this.deps.vms.launch({
      id: row.id,
      memoryMb: row.spec.memory_mb,
      vcpus: row.spec.vcpus,
      rootfs,
      ports: [...rt.hostPorts].map(([guestPort, hostPort]) => ({ guestPort, hostPort })),
      overlayDisk: join(this.deps.instancesDir, row.id, "overlay.ext4"),
      workspace: row.spec.workspace ?? undefined,
      rootfsDir: row.spec.rootfs_dir ?? undefined,
      network: row.spec.network,
      netnsPath: row.spec.netns_path,
      restoreFrom,
      substitutions,
    });
  }

  /** What the instance's granted secrets become (raw values and placeholders; resolved now, so a changed secret applies at the next start). */
  private secretPlan(row: InstanceRow): ReturnType<InstanceDeps["secrets"]["plan"]> {
    const names = row.spec.secrets.includes("*") ? "*" : row.spec.secrets;
    return this.deps.secrets.plan(names, row.spec.app_id ?? undefined, row.spec.env);
  }

  /**
   * The environment an instance's processes get: its resolved env (the
   * image's Env under the request's) and the secrets it was granted
   * (resolved now, so a changed secret applies at the next start; a
   * substituted one as its placeholder, with the trust-store variables), its
   * workdir and user. Rows stored before the image config was resolved at
   * create time take the image's PATH and WorkingDir here, as they did.
   */
  async commandEnvironment(row: InstanceRow): Promise<{ env: Record<string, string>; cwd: string | undefined; user: string | undefined }> {
    const plan = this.secretPlan(row);
    // A raw value reaching a running VM (a binding changed since it booted) rules out its snapshot.
    if (plan.raw.length > 0) this.runtimes.of(row.id).rawSecrets = true;
    // Substituted secrets: the guest trusts the egress CA (installed at launch, vms.ts).
    const env = plan.substitutions.length > 0 ? withTrustEnv({ ...row.spec.env, ...plan.env }) : { ...row.spec.env, ...plan.env };
    const legacy = row.spec.image && (env.PATH === undefined || row.spec.workdir === null) ? await this.deps.images.resolve(row.spec.image) : null;
    return {
      env: legacy?.env_path && env.PATH === undefined ? { PATH: legacy.env_path, ...env } : env,
      cwd: row.spec.workdir ?? legacy?.working_dir ?? undefined,
      user: row.spec.user ?? undefined,
    };
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
      this.runtimes.of(id).expectingExit = true;
    });
  }

  /** When the VM process ends, the instance is stopped (with an error noted if it crashed while we did not stop it). */
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
}
