/**
 * @module vmm/qemu-vm
 * One running QEMU VM (created by `QemuBackend.boot`, qemu.ts): pause and
 * resume over QMP, memory snapshots (snapshot-file.ts), `port.wait`, clean
 * stop, and the process-group kill that also takes virtiofsd down.
 */
import { renameSync, statSync } from "node:fs";
import { keepBounded } from "../control/file-ring.ts";
import type { Vm, VmSpec } from "./backend.ts";
import type { ControlChannel } from "./control-channel.ts";
import { shutdownGracefully } from "./graceful-stop.ts";
import { SnapshotUnsupportedError } from "./errors.ts";
import { waitGuestPort, type GuestPortState } from "./guest-port.ts";
import { QmpClient } from "./qmp.ts";
import { publishMemoryFile, receiveSnapshot, removeSnapshot, splitMemoryFile, stampFile, writeSnapshotMeta, type SnapshotIdentity } from "./snapshot-file.ts";
import { SnapshotFormatError } from "./snapshot-split.ts";
import { killGroup } from "./virtiofsd.ts";
import type { VmNetwork } from "./network/index.ts";
import type { PodNetwork } from "./network/pod.ts";
import type { VmProcess } from "./vm-process.ts";

/** Size at which a VM's console log is rotated (one previous generation is kept). */
export const CONSOLE_MAX_BYTES = 1024 * 1024;

/** Socket and log paths of one VM. */
export interface VmPaths {
  console: string;
  qmp: string;
  mig: string;
}

/** A VM run by QEMU. */
export class QemuVm implements Vm {
  readonly id: string;
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly consoleLog: string;
  /** PID of this VM's virtiofsd (leader of its own process group), when a workspace is shared. */
  readonly virtiofsdPid?: number;
  private qmp?: QmpClient;
  /**
   * Restore phases of this boot, in ms since QEMU was spawned (qmpConnected,
   * migrationLoaded, resumed, firstPing, clockSet) plus `setupRpc` (its own
   * duration) for template starts; empty for a cold boot. For benchmarks.
   */
  bootPhases: Record<string, number> = {};
  /** See Vm.bootMarks: the same phases as absolute `performance.now()` values, plus the host's set-up before the spawn. */
  bootMarks: Record<string, number> = {};
  /**
   * Set when guest RAM is a shared memory file (template builds): the
   * snapshot then migrates with `x-ignore-shared`, streaming device state
   * only, and copies the file to `publishTo` (when set) before the metadata.
   */
  sharedRam?: { path: string; publishTo?: string };
  /** True when restored from a template snapshot (set by QemuBackend.bootFromTemplate). */
  fromTemplate = false;
  private paused = false;
  /** Set once a snapshot completed: the guest must not run again or the snapshot's disks diverge. */
  private snapshotted = false;

  constructor(
    private readonly spec: VmSpec,
    private readonly proc: VmProcess,
    readonly channel: ControlChannel,
    private readonly paths: VmPaths,
    qmp: QmpClient | undefined,
    private readonly virtiofsd: VmProcess | undefined,
    /** Spawn-to-ready (or spawn-to-answering after restore) time of this boot, in ms. */
    readonly bootMs: number,
    /** Async for an adopted VM: its guest assets are located only when a snapshot needs them (not on the restart window). */
    private readonly identity: () => SnapshotIdentity | Promise<SnapshotIdentity>,
    /** The VM's host-side network (namespace, policy, relays; or the pod network's tap and filters), torn down when QEMU exits. */
    private readonly net?: VmNetwork | PodNetwork,
  ) {
    this.id = spec.id;
    this.pid = proc.pid;
    this.consoleLog = paths.console;
    this.virtiofsdPid = virtiofsd?.pid;
    this.qmp = qmp;
    const stopRing = keepBounded(paths.console, CONSOLE_MAX_BYTES);
    this.exited = proc.exited.then(async (code) => {
      stopRing();
      channel.close(`VM ${spec.id} exited (code ${code})`);
      this.qmp?.close();
      if (this.virtiofsd) {
        // It exits by itself once QEMU disconnects; the group kill covers a wedged one.
        killGroup(this.virtiofsd.pid, "SIGTERM");
        await this.virtiofsd.exited;
      }
      await this.net?.close();
      return code;
    });
  }

  /** True once the QEMU process has exited. */
  private get gone(): boolean {
    return this.proc.gone;
  }

  /** Set when an adopted VM was found paused: its harness answers the `resume` replay only once it runs again. */
  private replayPending = false;

  /** An adopted VM that QMP reports paused: remember it, and replay its held output when it is resumed. */
  adoptedPaused(): void {
    this.paused = true;
    this.replayPending = true;
  }

  /** True while the VM's vCPUs are stopped. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Forward 127.0.0.1:`hostPort` to the guest's `guestPort` on the running VM (user network `n0`). */
  async addPortForward(hostPort: number, guestPort: number): Promise<void> {
    if (this.net?.mode === "pod") return await this.net.addForward(hostPort); // refused: no slirp to forward with
    // Success prints nothing; a failure prints why ("Could not set up host forwarding rule ...").
    const cmd = `hostfwd_add n0 tcp:${this.net?.hostfwdAddress ?? "127.0.0.1"}:${hostPort}-:${guestPort}`;
    const out = await this.monitor(cmd);
    if (out.length > 0) throw new Error(`QEMU monitor "${cmd}": ${out}`);
    await this.net?.addForward(hostPort);
  }

  /** Drop the forward of 127.0.0.1:`hostPort`. */
  async removePortForward(hostPort: number): Promise<void> {
    // QEMU answers "host forwarding rule for tcp:... removed" (or "not found").
    this.net?.removeForward(hostPort);
    const cmd = `hostfwd_remove n0 tcp:${this.net?.hostfwdAddress ?? "127.0.0.1"}:${hostPort}`;
    const out = await this.monitor(cmd);
    if (!out.endsWith("removed")) throw new Error(`QEMU monitor "${cmd}": ${out || "no answer"}`);
  }

  /** Run a human-monitor command and return its trimmed output text. */
  private async monitor(commandLine: string): Promise<string> {
    const out = await (await this.qmpClient()).execute<string>("human-monitor-command", { "command-line": commandLine });
    return typeof out === "string" ? out.trim() : "";
  }

  private async qmpClient(): Promise<QmpClient> {
    this.qmp ??= await QmpClient.connect(this.paths.qmp);
    return this.qmp;
  }

  /** Pause the vCPUs (QMP `stop`). */
  async pause(): Promise<void> {
    await (await this.qmpClient()).stop();
    this.paused = true;
  }

  /** Resume (QMP `cont`) and resync the guest clock, which stood still while paused. */
  async resume(): Promise<void> {
    await (await this.qmpClient()).cont();
    this.paused = false;
    this.snapshotted = false;
    if (this.replayPending) {
      this.replayPending = false;
      await this.channel.resume();
    }
    await this.channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: 5000 });
  }

  /**
   * Write a memory snapshot to `path` (zstd when it ends in .zst) plus
   * `<path>.json`; leaves the VM paused. Throws `SnapshotUnsupportedError`
   * without touching the VM when a workspace is attached. On a failed
   * migration the VM is resumed if it was running, and the error propagates.
   */
  async snapshot(path: string): Promise<void> {
    if (this.spec.workspace || this.spec.rootfsDir) {
      throw new SnapshotUnsupportedError(
        this.id,
        `its ${this.spec.workspace ? `workspace ${this.spec.workspace}` : `root filesystem ${this.spec.rootfsDir}`} is shared through virtiofs, and QEMU 7.2 cannot migrate a vhost-user-fs device`,
        "stop the VM cleanly instead and cold boot it later (its overlay disk and workspace keep every file)",
      );
    }
    const identity = await this.identity();
    const qmp = await this.qmpClient();
    const wasRunning = !this.paused;
    removeSnapshot(path);
    await qmp.stop();
    this.paused = true;
    const receiver = receiveSnapshot(this.paths.mig, path);
    receiver.done.catch(() => undefined); // awaited below; a failed migration may settle it first
    try {
      // QEMU 7.2 throttles migration to 32 MiB/s by default; the VM is paused, so go as fast as the disk allows.
      await qmp.execute("migrate-set-parameters", { "max-bandwidth": 8 * 1024 ** 3 });
      // Always explicit: a template clone's QEMU loaded its state with the capability on, and its own
      // snapshot must stream all RAM in the format a plain restore reads.
      await qmp.setMigrationCapability("x-ignore-shared", this.sharedRam !== undefined);
      await qmp.migrate(`unix:${this.paths.mig}`);
      for (;;) {
        const st = await qmp.queryMigrate();
        if (st.status === "completed") break;
        if (st.status === "failed" || st.status === "cancelled") {
          // The receiver may have ended the stream itself (a format it cannot split): its error says why.
          const why = await Promise.race([receiver.done.then(() => undefined, (e: unknown) => e), Bun.sleep(1000).then(() => undefined)]);
          if (why instanceof SnapshotFormatError) throw why;
          throw new Error(`snapshot of VM ${this.id} to ${path} ${st.status}: ${st["error-desc"] ?? "no detail from QEMU"}`);
        }
        await Bun.sleep(20);
      }
      const bytes = await receiver.done;
      renameSync(`${path}.partial`, path);
      const splitRam = splitMemoryFile(path);
      if (splitRam) {
        renameSync(`${splitRam}.partial`, splitRam);
        identity.memory = stampFile(splitRam);
      }
      // The vCPUs are stopped and the migration is complete: the RAM file is final.
      if (this.sharedRam?.publishTo && this.sharedRam.publishTo !== this.sharedRam.path) await publishMemoryFile(this.sharedRam.path, this.sharedRam.publishTo);
      // The RAM file is stamped as published (the identity above was taken before it existed).
      if (this.sharedRam) identity.memory = stampFile(this.sharedRam.publishTo ?? this.sharedRam.path);
      writeSnapshotMeta(path, { format: 1, vmId: this.id, createdAt: new Date().toISOString(), bytes: statSync(path).size, ...identity });
      if (bytes <= 0) throw new Error(`snapshot of VM ${this.id} to ${path} received no data`);
      this.snapshotted = true;
    } catch (err) {
      receiver.close();
      removeSnapshot(path);
      if (wasRunning && !this.gone) await this.resume();
      throw err;
    } finally {
      receiver.close();
    }
  }

  /** Resolve once something listens on guest TCP `port` (see guest-port.ts). */
  waitForPort(port: number, timeoutMs: number): Promise<GuestPortState> {
    return waitGuestPort(this.channel, this.id, port, timeoutMs);
  }

  /**
   * Power off: ask the harness (sync, unmount, reboot), SIGKILL the process
   * group after `graceMs`. Right after a snapshot it kills at once instead:
   * a clean shutdown would write the overlay disk and invalidate the
   * snapshot (QEMU flushed the disks when the migration completed). A
   * paused VM is resumed first so it can shut down.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.gone) return;
    if (this.snapshotted) {
      this.kill();
      await this.exited;
      return;
    }
    // A paused guest cannot run its shutdown: resume it first.
    if (this.paused) await (await this.qmpClient()).cont();
    await shutdownGracefully(this.channel, this.exited, () => this.kill(), graceMs);
  }

  /** SIGKILL the QEMU process group (and virtiofsd's). */
  kill(): void {
    killGroup(this.pid);
    if (this.virtiofsd) killGroup(this.virtiofsd.pid);
  }
}
