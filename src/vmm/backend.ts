/**
 * @module vmm/backend
 * The VM backend contract (DESIGN.md section 5). The daemon's lifecycle code
 * talks only to these interfaces; `qemu.ts` and `libkrun.ts` implement them.
 */
import type { ControlChannel } from "./control-channel.ts";

/** What a backend can do; reported by `GET /v1/status` and `aegis doctor`. */
export interface BackendCapabilities {
  pauseResume: boolean;
  memorySnapshots: boolean;
  diskLayers: boolean;
}

/** A host port forwarded to a guest TCP port (QEMU user networking `hostfwd`). */
export interface PortForward {
  hostPort: number;
  guestPort: number;
}

/** Everything needed to boot one VM. Secrets are never part of a VmSpec: they go over the control channel. */
export interface VmSpec {
  /** Instance or task id (used in logs and process titles). */
  id: string;
  /** Per-VM directory for sockets, the console log and disks (`AEGIS_HOME/instances/<id>`). */
  runDir: string;
  memoryMb: number;
  vcpus: number;
  /** Read-only ext4 image used as the guest rootfs; the backend's base busybox rootfs when absent. */
  rootfs?: string;
  /** Optional per-instance writable disk for the rootfs overlay's upper layer; tmpfs when absent. */
  overlayDisk?: string;
  /** Host ports forwarded to guest ports. */
  ports: PortForward[];
  /** Host directory shared at /workspace (virtiofs). */
  workspace?: string;
  /** Guest hostname. */
  hostname: string;
  /** Restore from this memory snapshot instead of cold booting. */
  restoreFrom?: string;
}

/** A running VM. */
export interface Vm {
  readonly id: string;
  /** PID of the VMM process (QEMU or the vmm worker). */
  readonly pid: number;
  /** JSON-RPC control channel to the guest harness (already past `ready` when boot() resolves). */
  readonly channel: ControlChannel;
  /** Path of the guest console log (kernel messages; kept for `aegis logs` after a crash). */
  readonly consoleLog: string;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Write a memory snapshot (only when capabilities.memorySnapshots). The VM is left paused. */
  snapshot?(path: string): Promise<void>;
  /** Ask the guest to power off cleanly, then force after a grace period. */
  stop(graceMs?: number): Promise<void>;
  /** Kill the VMM process group at once. */
  kill(): void;
  /** Resolves with the VMM process exit code when it is gone. */
  readonly exited: Promise<number>;
}

/** A VM backend. */
export interface Backend {
  readonly name: "qemu" | "libkrun";
  readonly capabilities: BackendCapabilities;
  /** Prepare what boots need (guest assets) ahead of the first boot. */
  prepare?(): Promise<unknown>;
  /** Boot (or restore) a VM and resolve once its harness is `ready`. */
  boot(spec: VmSpec): Promise<Vm>;
}
