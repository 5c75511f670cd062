/**
 * @module vmm/libkrun-vm
 * One running libkrun VM: an `aegis-vmm-worker` process (leader of its own
 * session and process group) inside which `krun_start_enter` runs the guest,
 * either spawned by this daemon or adopted from a previous one (live
 * restore; its exit code is then unknown, -1, see vm-process.ts). libkrun
 * cannot pause, resume or snapshot a VM, so those throw
 * `LibkrunUnsupportedError`; stop asks the harness to power off and kills
 * the worker's process group after a grace period.
 */
import type { Vm, VmSpec } from "./backend.ts";
import type { ControlChannel } from "./control-channel.ts";
import type { VmProcess } from "./vm-process.ts";
import { shutdownGracefully } from "./graceful-stop.ts";
import { waitGuestPort, type GuestPortState } from "./guest-port.ts";
import { killGroup } from "./virtiofsd.ts";

/** An operation the libkrun backend does not have (pause, resume, memory snapshots). */
export class LibkrunUnsupportedError extends Error {
  override name = "LibkrunUnsupportedError";
  readonly code = "backend_unsupported" as const;
  constructor(
    readonly vmId: string,
    readonly operation: "pause" | "resume" | "snapshot",
  ) {
    super(
      `cannot ${operation} VM ${vmId}: the libkrun backend does not support ${operation === "snapshot" ? "memory snapshots" : "pause/resume"}\nhint: stop the VM and start it again (its overlay disk keeps its files), or run with AEGIS_BACKEND=qemu`,
    );
  }
}

/** Name-based guard for `LibkrunUnsupportedError`. */
export function isLibkrunUnsupported(x: unknown): x is LibkrunUnsupportedError {
  return typeof x === "object" && x !== null && (x as { name?: unknown }).name === "LibkrunUnsupportedError";
}

/** A VM run by one libkrun worker process. */
export class LibkrunVm implements Vm {
  readonly id: string;
  readonly pid: number;
  readonly exited: Promise<number>;
  readonly fromTemplate = false;

  constructor(
    spec: VmSpec,
    private readonly proc: VmProcess,
    readonly channel: ControlChannel,
    readonly consoleLog: string,
    /** Spawn-to-ready time of this boot, in ms. */
    readonly bootMs: number,
  ) {
    this.id = spec.id;
    this.pid = proc.pid;
    this.exited = proc.exited.then((code) => {
      channel.close(`VM ${spec.id} exited (code ${code})`);
      return code;
    });
  }

  private get gone(): boolean {
    return this.proc.gone;
  }

  /** Not supported by libkrun. */
  pause(): Promise<void> {
    return Promise.reject(new LibkrunUnsupportedError(this.id, "pause"));
  }

  /** Not supported by libkrun. */
  resume(): Promise<void> {
    return Promise.reject(new LibkrunUnsupportedError(this.id, "resume"));
  }

  /** Not supported by libkrun (capabilities.memorySnapshots is false). */
  snapshot(_path: string): Promise<void> {
    return Promise.reject(new LibkrunUnsupportedError(this.id, "snapshot"));
  }

  /** Resolve once something listens on guest TCP `port` (see guest-port.ts). */
  waitForPort(port: number, timeoutMs: number): Promise<GuestPortState> {
    return waitGuestPort(this.channel, this.id, port, timeoutMs);
  }

  /** Ask the harness to power off (`shutdown`), SIGKILL the worker's group after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.gone) return;
    await shutdownGracefully(this.channel, this.exited, () => this.kill(), graceMs);
  }

  /** SIGKILL the worker's process group (the VM dies with it). */
  kill(): void {
    killGroup(this.pid);
  }
}
