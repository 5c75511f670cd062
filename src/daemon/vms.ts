/**
 * @module daemon/vms
 * The daemon's one door to virtual machines: boots VMs on the selected
 * backend from a small launch request and tracks every VM it started, so
 * `aegis down` tears them all down. New VMs start from a template snapshot
 * when the backend supports it (no user process, secret or per-instance disk
 * is ever in a template: the guest's setup is deferred until after the
 * restore). The backend builds the guest assets
 * lazily (cached by content hash under AEGIS_HOME/guest); the daemon warms
 * them at start-up through {@link VmLauncher.warm}.
 */
import { join } from "node:path";
import { BackendError } from "../api/errors.ts";
import type { StatePaths } from "../paths.ts";
import type { Backend, PortForward, Vm } from "../vmm/backend.ts";

/** What a caller asks for; the launcher fills in directories and the hostname. */
export interface LaunchRequest {
  id: string;
  memoryMb: number;
  vcpus: number;
  /** Image rootfs (ext4); the backend's base busybox rootfs when absent. */
  rootfs?: string;
  ports?: PortForward[];
  /** Per-instance writable layer (created by the backend when missing). */
  overlayDisk?: string;
  /** Host directory shared at /workspace. */
  workspace?: string;
  /** Restore this memory snapshot instead of cold booting. */
  restoreFrom?: string;
}

/** Boots and tracks VMs. */
export class VmLauncher {
  private readonly live = new Set<Vm>();

  constructor(
    private readonly paths: StatePaths,
    private readonly backend: Backend | null,
    private readonly backendReason: string,
  ) {}

  /**
   * Build or find the guest assets ahead of the first boot (daemon start-up),
   * then the template of the default task shape (base rootfs, 512 MB, 1 vCPU)
   * so the first `aegis run` starts in about a second. AEGIS_WARM=0 skips the
   * template (the test suite, which starts many short-lived daemons).
   */
  async warm(): Promise<void> {
    await this.backend?.prepare?.();
    if (this.templatesEnabled() && process.env.AEGIS_WARM !== "0") await this.backend?.warmTemplate?.({ memoryMb: 512, vcpus: 1 });
  }

  private templatesEnabled(): boolean {
    return this.backend?.bootFromTemplate !== undefined && process.env.AEGIS_TEMPLATES !== "0";
  }

  /** Boot a VM and resolve once its harness is ready. */
  async launch(req: LaunchRequest): Promise<Vm> {
    if (!this.backend) {
      throw new BackendError(`no VM backend is available: ${this.backendReason}`, "install QEMU (apt-get install qemu-system-x86) and check 'aegis doctor'");
    }
    const spec = {
      id: req.id,
      runDir: join(this.paths.instances, req.id),
      memoryMb: req.memoryMb,
      vcpus: req.vcpus,
      rootfs: req.rootfs,
      ports: req.ports ?? [],
      hostname: req.id,
      overlayDisk: req.overlayDisk,
      workspace: req.workspace,
      restoreFrom: req.restoreFrom,
    };
    // Start from the shape's template snapshot when the backend has them
    // (~1 s instead of a ~3.7 s cold boot under TCG); AEGIS_TEMPLATES=0 turns it off.
    const vm = this.templatesEnabled() ? await this.backend.bootFromTemplate!(spec) : await this.backend.boot(spec);
    this.live.add(vm);
    const forget = () => this.live.delete(vm);
    vm.exited.then(forget, forget);
    return vm;
  }

  /**
   * Kill every VM this daemon started (daemon shutdown), then whatever else
   * the backend still runs: template builds and boots not yet handed out
   * (the warm-up's template VM when `aegis down` comes right after `aegis up`).
   */
  async killAll(): Promise<void> {
    const vms = [...this.live];
    for (const vm of vms) vm.kill();
    await Promise.all(vms.map((vm) => vm.exited));
    await this.backend?.killAll?.();
  }
}
