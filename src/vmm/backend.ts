/**
 * @module vmm/backend
 * The VM backend contract (DESIGN.md section 5). The daemon's lifecycle code
 * talks only to these interfaces; `qemu.ts` and `libkrun.ts` implement them.
 */
import type { ControlChannel } from "./control-channel.ts";
import type { GuestPortState } from "./guest-port.ts";
import type { NetworkPolicy } from "../api/network-policy.ts";
import type { BoundHost } from "../api/egress-secrets.ts";

/** What a backend can do; reported by `GET /v1/status` and `aegis doctor`. */
export interface BackendCapabilities {
  pauseResume: boolean;
  memorySnapshots: boolean;
  /** A per-instance writable overlay disk over a shared read-only image (`VmSpec.overlayDisk`). */
  diskLayers: boolean;
  /** Whether a VM with a workspace can be snapshotted (false on QEMU 7.2: vhost-user-fs blocks migration). */
  workspaceSnapshots?: boolean;
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
  /**
   * Optional per-instance writable disk (a file) holding the rootfs overlay's
   * upper layer; tmpfs when absent. The backend creates it (sparse ext4,
   * `overlayDiskSizeMb`) when the file does not exist, except on restore.
   * Everything the guest writes under / lands here and survives stop/start.
   */
  overlayDisk?: string;
  /** Size of a newly created overlay disk in MB (default 2048; sparse on the host). */
  overlayDiskSizeMb?: number;
  /** Host ports forwarded to guest ports. */
  ports: PortForward[];
  /**
   * Host directory shared at /workspace (virtiofs). Writes show on both sides
   * (host-side changes within ~1 s). A VM with a workspace cannot be
   * snapshotted (`snapshot()` throws `SnapshotUnsupportedError`).
   */
  workspace?: string;
  /**
   * Host directory booted as the guest's root filesystem instead of an ext4
   * image (the containerd shim's bundle rootfs): shared read-only by a
   * virtiofsd of its own (`startRootfsVirtiofsd`), the guest's writes going
   * to its overlay. Exclusive with `workspace`; never snapshotted.
   */
  rootfsDir?: string;
  /** Guest hostname. */
  hostname: string;
  /**
   * Egress policy (api/network-policy.ts): the default (public internet only)
   * when absent. Every front (tasks, instances, MCP children, E2B, the shim)
   * goes through here, so none can skip it.
   */
  network?: NetworkPolicy;
  /**
   * Hosts the VM's substituted secrets are bound to (api/egress-secrets.ts):
   * its TLS to them goes through the host's egress proxy. Names only: the
   * values reach the proxy in memory (network/egress-proxy.ts), never here.
   */
  egressHosts?: BoundHost[];
  /**
   * Pod network mode (network/pod.ts): the absolute path of an existing
   * network namespace (CNI's, e.g. /var/run/netns/cni-...) that becomes the
   * VM's network: QEMU runs in it on a tap redirected from the CNI
   * interface, and the guest takes the pod's IPv4 address. `network`,
   * `egressHosts` and `ports` do not apply then; never from a template or
   * snapshot. Recorded with the VM, so a restarted aegisd re-adopts it.
   */
  netnsPath?: string;
  /**
   * Restore from this memory snapshot instead of cold booting. The spec must
   * match the one snapshotted (memory, vcpus, rootfs, overlayDisk, hostname;
   * no workspace) and the disks must be untouched since: otherwise boot()
   * throws `SnapshotStaleError` before spawning anything (cold boot instead).
   */
  restoreFrom?: string;
}

/**
 * What a backend records about a VM process the moment it spawns it, before
 * the VM is used (live restore: a later daemon re-adopts the VM from this,
 * or kills it).
 */
export interface VmProcessRecord {
  /** `VmSpec.id` (the task or instance id; `template-...` for template builds). */
  id: string;
  pid: number;
  /** /proc/PID/stat start time (vm-process.ts): the pid is ours only while it matches. */
  startTime: string;
  virtiofsdPid?: number;
  virtiofsdStartTime?: string;
  /** A template build: never worth adopting. */
  template: boolean;
  /** Its network namespace slot (`aegis-N`, vmm/network); absent in reduced mode. Its policy is `VmSpec.network`. */
  netSlot?: number;
}

/** Where a backend records its VM processes (the daemon's registry). */
export interface VmJournal {
  /** A VM process was spawned for `spec` (written before the VM is used). */
  spawned(rec: VmProcessRecord, spec: VmSpec): void;
  /** The VM process `pid` of `id` is gone. */
  gone(id: string, pid: number): void;
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
  /**
   * Write a memory snapshot (only when capabilities.memorySnapshots). The VM
   * is left paused; the snapshot stays valid only while its disks are not
   * written, so the next step is normally `stop()` (which then kills at once).
   * Throws `SnapshotUnsupportedError` (VM untouched) when it cannot be migrated.
   */
  snapshot?(path: string): Promise<void>;
  /**
   * Where this VM's boot went: phase name -> `performance.now()` at its end,
   * on the daemon's clock (the backend runs in the daemon). QEMU marks
   * `checked` (snapshot validated), `network`, `spawned`, then for a restore
   * `qmpConnected`, `migrationLoaded`, `resumed`, `firstPing`, `clockSet`.
   * For wake traces (daemon/instances/wake-trace.ts) and benchmarks.
   */
  readonly bootMarks?: Readonly<Record<string, number>>;
  /** True when this VM was restored from a template snapshot (bootFromTemplate). */
  readonly fromTemplate?: boolean;
  /** Resolve once something listens on guest TCP `port`; throws `GuestPortTimeoutError`. */
  waitForPort?(port: number, timeoutMs: number): Promise<GuestPortState>;
  /** Forward a new host port to a guest port while the VM runs (QEMU: `hostfwd_add`). */
  addPortForward?(hostPort: number, guestPort: number): Promise<void>;
  /** Stop forwarding a host port while the VM runs (QEMU: `hostfwd_remove`). */
  removePortForward?(hostPort: number): Promise<void>;
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
  /** Build the template snapshot of a VM shape ahead of its first `bootFromTemplate`. */
  warmTemplate?(shape: { memoryMb: number; vcpus: number; rootfs?: string }): Promise<void>;
  /** Boot (or restore) a VM and resolve once its harness is `ready`. */
  boot(spec: VmSpec): Promise<Vm>;
  /**
   * Start a VM from a shared template snapshot (built on first use per
   * machine shape and image) instead of a cold boot; the result is a VM
   * like boot()'s, with its own overlay disk, hostname, clock and RNG seed.
   * Falls back to boot(spec) when no template fits (a workspace, or
   * `restoreFrom` set); `Vm.fromTemplate` tells which happened.
   */
  bootFromTemplate?(spec: VmSpec): Promise<Vm>;
  /**
   * Kill every VM process the backend spawned that still runs (template
   * builds and boots in flight included), except the VMM pids in `keep`,
   * and spawn no more: the last step of a daemon shutdown.
   */
  killAll?(keep?: ReadonlySet<number>): Promise<void>;
  /**
   * Take over a VM a previous daemon left running (live restore): check the
   * process is the one recorded (pid + start time), reconnect its control
   * channel (and QEMU's QMP; libkrun's worker has no monitor, so a `ping`
   * answered is its handshake), call `beforeReplay` (subscribe to its notifications),
   * then replay what the guest held while no daemon listened. Throws when the
   * VM cannot be adopted; the caller then kills it.
   */
  adopt?(rec: VmProcessRecord, spec: VmSpec, beforeReplay: (vm: Vm) => void): Promise<Vm>;
  /** Where spawned VM processes are recorded (set by the daemon once its registry is open). */
  journal?: VmJournal;
}
